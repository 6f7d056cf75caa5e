/**
 * A single-node KRaft Kafka broker on loopback, run by `scripts/kafka.sh` from Apache Kafka's jars
 * (fetched with Maven into the tools dir). Used by `sage dev --kafka`, the test runner and the benches.
 */
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { BrokerUnavailableError } from "../core/errors.js";

const SCRIPT = resolve(dirname(fileURLToPath(import.meta.url)), "../scripts/kafka.sh");

/** Where a broker listens and keeps its data. */
export interface BrokerOptions {
  port: number;
  controllerPort: number;
  dataDir: string;
  heapMb?: number;
}

/** A broker started by `startBroker`. */
export interface Broker extends BrokerOptions {
  /** `127.0.0.1:<port>` */
  readonly address: string;
  pid(): number | null;
  /** Clean shutdown (SIGTERM). */
  stop(): void;
  /** SIGKILL, as a crash would. */
  kill(): void;
  /** Starts it again on the same data dir. */
  restart(): void;
}

function run(command: string, options: BrokerOptions): string {
  const res = spawnSync("bash", [SCRIPT, command], {
    env: {
      ...process.env,
      KAFKA_PORT: String(options.port),
      KAFKA_CONTROLLER_PORT: String(options.controllerPort),
      KAFKA_DATA: options.dataDir,
      ...(options.heapMb ? { KAFKA_HEAP: `${options.heapMb}m` } : {}),
    },
    encoding: "utf8",
  });
  if (res.status !== 0) {
    throw new BrokerUnavailableError(`scripts/kafka.sh ${command} failed (exit ${res.status}): ${(res.stderr || res.stdout).trim()}`, { retriable: false });
  }
  return res.stdout.trim();
}

/** Stops a broker started earlier on these options (clean shutdown). */
export function stopBroker(options: BrokerOptions, log: (m: string) => void = () => {}): void {
  log(run("stop", options));
}

/** Starts (or finds running) a broker and waits until it answers. */
export function startBroker(options: BrokerOptions, log: (m: string) => void = () => {}): Broker {
  log(run("start", options));
  const pidFile = join(resolve(options.dataDir), "broker.pid");
  const pid = (): number | null => (existsSync(pidFile) ? Number(readFileSync(pidFile, "utf8").trim()) || null : null);
  return {
    ...options,
    address: `127.0.0.1:${options.port}`,
    pid,
    stop: () => log(run("stop", options)),
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
    restart: () => log(run("start", options)),
  };
}
