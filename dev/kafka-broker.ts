/**
 * KRaft Kafka brokers on loopback, run by `scripts/kafka.sh` from Apache Kafka's jars (fetched with
 * Maven into the tools dir): one broker, optionally with SASL and TLS listeners, or a cluster of
 * combined broker+controller nodes. Used by `sage dev --kafka`, the test runner and the benches.
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { BrokerUnavailableError } from "../core/errors.js";

const SCRIPT = resolve(dirname(fileURLToPath(import.meta.url)), "../scripts/kafka.sh");

/** Listeners a broker serves besides its PLAINTEXT one. */
export interface BrokerSecurityOptions {
  /** Port of a SASL listener offering SCRAM-SHA-512, SCRAM-SHA-256 and PLAIN. */
  saslPort?: number;
  /** SASL over TLS (default) or over plain TCP. */
  saslProtocol?: "SASL_SSL" | "SASL_PLAINTEXT";
  /** SASL users, name to password (SCRAM credentials are stored when the data dir is formatted). */
  users?: Record<string, string>;
  /** Port of a TLS listener that requires a client certificate signed by the generated CA. */
  sslPort?: number;
}

/** Where a broker listens and keeps its data. */
export interface BrokerOptions {
  port: number;
  controllerPort: number;
  dataDir: string;
  heapMb?: number;
  security?: BrokerSecurityOptions;
}

/** PEM files the script generated with keytool for a broker with TLS listeners. */
export interface BrokerTlsFiles {
  /** The CA that signed the broker's and the client's certificates: what clients trust. */
  ca: string;
  /** A client certificate and key the TLS listener accepts. */
  cert: string;
  key: string;
  /** The same client key certified for 30 days that ended long ago. */
  expiredCert: string;
}

/** A broker started by `startBroker`, or one node of a cluster. */
export interface Broker extends BrokerOptions {
  /** `127.0.0.1:<port>` */
  readonly address: string;
  /** The SASL listener's address, when it has one. */
  readonly saslAddress?: string;
  /** The TLS listener's address, when it has one. */
  readonly sslAddress?: string;
  /** The generated certificates, when it has a TLS listener. */
  readonly tls?: BrokerTlsFiles;
  pid(): number | null;
  /** Clean shutdown (SIGTERM). */
  stop(): void;
  /** SIGKILL, as a crash would. */
  kill(): void;
  /** Starts it again on the same data dir. */
  restart(): void;
  /** Starts it again without blocking this process (its workers and shims keep running meanwhile). */
  relaunch(): Promise<void>;
}

/** The script's environment for `options`; `node` picks one node of a cluster. */
function scriptEnv(options: BrokerOptions | ClusterOptions, node?: number): NodeJS.ProcessEnv {
  const s = "security" in options ? options.security : undefined;
  const cluster = "ports" in options;
  return {
    ...process.env,
    KAFKA_DATA: options.dataDir,
    ...(cluster
      ? { KAFKA_NODES: String(options.ports.length), KAFKA_PORT: options.ports.join(","), KAFKA_CONTROLLER_PORT: options.controllerPorts.join(",") }
      : { KAFKA_PORT: String(options.port), KAFKA_CONTROLLER_PORT: String(options.controllerPort) }),
    ...(node !== undefined ? { KAFKA_NODE: String(node) } : {}),
    ...(options.heapMb ? { KAFKA_HEAP: `${options.heapMb}m` } : {}),
    ...(s?.saslPort ? { KAFKA_SASL_PORT: String(s.saslPort), KAFKA_SASL_PROTOCOL: s.saslProtocol ?? "SASL_SSL" } : {}),
    ...(s?.users
      ? {
          KAFKA_SASL_USERS: Object.entries(s.users)
            .map(([u, p]) => `${u}:${p}`)
            .join(","),
        }
      : {}),
    ...(s?.sslPort ? { KAFKA_SSL_PORT: String(s.sslPort) } : {}),
  };
}

function failure(command: string, status: number | null, output: string): BrokerUnavailableError {
  return new BrokerUnavailableError(`scripts/kafka.sh ${command} failed (exit ${status}): ${output.trim()}`, { retriable: false });
}

function run(command: string, env: NodeJS.ProcessEnv): string {
  const res = spawnSync("bash", [SCRIPT, command], { env, encoding: "utf8" });
  if (res.status !== 0) throw failure(command, res.status, res.stderr || res.stdout);
  return res.stdout.trim();
}

function runAsync(command: string, env: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((done, fail) => {
    const child = spawn("bash", [SCRIPT, command], { env, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    child.once("error", fail);
    child.once("exit", (code) => (code === 0 ? done(out.trim()) : fail(failure(command, code, err || out))));
  });
}

/** Stops a broker started earlier on these options (clean shutdown). */
export function stopBroker(options: BrokerOptions, log: (m: string) => void = () => {}): void {
  log(run("stop", scriptEnv(options)));
}

/** The handle of a running broker or node whose pid file is in `nodeDir`. */
function handle(options: BrokerOptions, nodeDir: string, env: NodeJS.ProcessEnv, log: (m: string) => void): Broker {
  const pidFile = join(resolve(nodeDir), "broker.pid");
  const pid = (): number | null => (existsSync(pidFile) ? Number(readFileSync(pidFile, "utf8").trim()) || null : null);
  const tlsDir = join(resolve(options.dataDir), "tls");
  const s = options.security;
  return {
    ...options,
    address: `127.0.0.1:${options.port}`,
    ...(s?.saslPort ? { saslAddress: `127.0.0.1:${s.saslPort}` } : {}),
    ...(s?.sslPort ? { sslAddress: `127.0.0.1:${s.sslPort}` } : {}),
    ...(existsSync(join(tlsDir, "ca.pem"))
      ? {
          tls: {
            ca: join(tlsDir, "ca.pem"),
            cert: join(tlsDir, "client.pem"),
            key: join(tlsDir, "client-key.pem"),
            expiredCert: join(tlsDir, "client-expired.pem"),
          },
        }
      : {}),
    pid,
    stop: () => log(run("stop", env)),
    kill() {
      const p = pid();
      if (p) {
        try {
          process.kill(p, "SIGKILL");
        } catch {
          // already gone
        }
      }
    },
    restart: () => log(run("start", env)),
    relaunch: async () => log(await runAsync("start", env)),
  };
}

/** Starts (or finds running) a broker and waits until it answers. */
export function startBroker(options: BrokerOptions, log: (m: string) => void = () => {}): Broker {
  const env = scriptEnv(options);
  log(run("start", env));
  return handle(options, options.dataDir, env, log);
}

/** `startBroker` without blocking this process meanwhile (a test runner's other files keep printing). */
export async function launchBroker(options: BrokerOptions, log: (m: string) => void = () => {}): Promise<Broker> {
  const env = scriptEnv(options);
  log(await runAsync("start", env));
  return handle(options, options.dataDir, env, log);
}

/** Where the nodes of a cluster listen (node i on `ports[i]`) and keep their data (`<dataDir>/node-<i+1>`). */
export interface ClusterOptions {
  ports: number[];
  controllerPorts: number[];
  dataDir: string;
  heapMb?: number;
}

/** A cluster started by `startCluster`. */
export interface Cluster {
  /** Bootstrap servers, comma-separated (a value for kafka.brokers). */
  readonly brokers: string;
  /** Node `i + 1` of the cluster, to kill and restart alone. */
  readonly nodes: Broker[];
  /** Stops every node (clean shutdown). */
  stop(): void;
}

/**
 * Starts (or finds running) a cluster of combined broker+controller nodes and waits until
 * transactions and group joins work on it. With three or more nodes, topics get replication factor
 * 3 and min.insync.replicas 2 unless created otherwise, and so do the internal ones.
 */
export function startCluster(options: ClusterOptions, log: (m: string) => void = () => {}): Cluster {
  if (options.ports.length !== options.controllerPorts.length || options.ports.length < 1) {
    throw new BrokerUnavailableError(`a cluster needs as many controller ports as ports (got ${options.ports.length} and ${options.controllerPorts.length})`, {
      retriable: false,
    });
  }
  log(run("start", scriptEnv(options)));
  const nodes = options.ports.map((port, i) =>
    handle(
      { port, controllerPort: options.controllerPorts[i]!, dataDir: options.dataDir, ...(options.heapMb ? { heapMb: options.heapMb } : {}) },
      options.ports.length === 1 ? options.dataDir : join(options.dataDir, `node-${i + 1}`),
      scriptEnv(options, i + 1),
      log,
    ),
  );
  return {
    brokers: nodes.map((n) => n.address).join(","),
    nodes,
    stop: () => log(run("stop", scriptEnv(options))),
  };
}

/** Stops a cluster started earlier on these options (clean shutdown of every node). */
export function stopCluster(options: ClusterOptions, log: (m: string) => void = () => {}): void {
  log(run("stop", scriptEnv(options)));
}
