/**
 * Shared test plumbing: the real dev server started by `scripts/run-tests.ts`, a fresh task queue
 * and data dir per test, in-process workers, and `sage` CLI runs as child processes.
 */
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, mkdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import proto from "@temporalio/proto";
import type { ChildProcess } from "node:child_process";
import type { Pipeline } from "../../core/api/pipeline.js";
import type { SageConfig } from "../../core/config/schema.js";
import { loadConfig } from "../../client/config-loader.js";
import { createLogger } from "../../client/logger.js";
import { SageClient, type SageJob } from "../../client/sage-client.js";
import type { JobProgress } from "../../core/plan/job.js";
import { createSageWorker, type SageWorker } from "../../worker/sage-worker.js";

/** Root of the repository. */
export const REPO = process.env.SAGE_REPO ?? resolve(".");

/** Address of the test run's dev server; throws when the file was not started by `npm test`. */
export function testAddress(): string {
  const address = process.env.SAGE_TEST_ADDRESS;
  if (!address) throw new Error("SAGE_TEST_ADDRESS is not set: run integration tests through `npm test` (it starts the Temporal dev server)");
  return address;
}

let counter = 0;
/** A fresh scratch folder for one test. */
export function scratchDir(label: string): string {
  const base = process.env.SAGE_TEST_DIR ?? join(REPO, ".sage", "test");
  mkdirSync(base, { recursive: true });
  return mkdtempSync(join(base, `${label.replace(/[^A-Za-z0-9]/g, "-")}-`));
}

/** Configuration for one test: the test server, its own task queue and data dir. */
export function testConfig(label: string, overrides: Record<string, unknown> = {}): SageConfig & { dir: string } {
  const dir = scratchDir(label);
  const config = loadConfig({
    env: {},
    overrides: {
      "temporal.address": testAddress(),
      "temporal.task-queue": `test-${label.replace(/[^A-Za-z0-9]/g, "-")}-${process.pid}-${++counter}`,
      "temporal.heartbeat-timeout": "5s",
      "data-dir": join(dir, "data"),
      "log.level": process.env.SAGE_TEST_LOG ?? "warn",
      // In-process workers and shims serve no /metrics unless a test asks (see scripts/run-tests.ts).
      "monitoring.enabled": false,
      ...overrides,
    },
  });
  return { ...config, dir };
}

/** An in-process worker for `pipeline`, running until `stop()`. */
export async function startWorker(pipeline: Pipeline, config: SageConfig): Promise<{ worker: SageWorker; running: Promise<void>; stop(): Promise<void> }> {
  const worker = await createSageWorker({ pipeline, config, logger: createLogger(config.log.level) });
  const running = worker.run();
  return {
    worker,
    running,
    async stop() {
      await worker.shutdown();
      await running;
    },
  };
}

/** Runs `pipeline` once with an in-process worker and returns the result. */
export async function runJob(pipeline: Pipeline, config: SageConfig, params: Record<string, string> = {}, jobId?: string) {
  const w = await startWorker(pipeline, config);
  const client = await SageClient.connect({ config });
  try {
    const job = await client.submit(pipeline, { params, ...(jobId ? { jobId } : {}) });
    // A worker that dies must fail the test, not leave it waiting for a result that never comes.
    const died = w.running.then(() => Promise.reject(new Error("the worker stopped before the job finished")));
    died.catch(() => undefined); // after the job finished, the worker stopping is expected
    return { job, result: await Promise.race([job.result(), died]) };
  } finally {
    await client.close();
    await w.stop();
  }
}

/** Polls `probe` every 100 ms until it returns a value; fails after `guardMs` (a hang guard, not a timing assertion). */
export async function until<T>(what: string, probe: () => Promise<T | undefined>, guardMs = 90_000): Promise<T> {
  const deadline = Date.now() + guardMs;
  for (;;) {
    const got = await probe().catch(() => undefined);
    if (got !== undefined) return got;
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Polls the `progress` query until `ok` holds (the query fails until a worker has the workflow). */
export async function progressUntil(job: SageJob, what: string, ok: (p: JobProgress) => boolean): Promise<JobProgress> {
  return until(what, async () => {
    const p = await job.progress();
    return ok(p) ? p : undefined;
  });
}

/** The records of a JSON Lines file (an empty file has none). */
export function readJsonl<T = unknown>(path: string): T[] {
  const text = readFileSync(path, "utf8");
  return text === ""
    ? []
    : text
        .trimEnd()
        .split("\n")
        .map((l) => JSON.parse(l) as T);
}

/** Result of a CLI run. */
export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `sage <args>` as a child process (synchronously). */
export function sageCli(args: string[], options: { cwd?: string; env?: Record<string, string>; timeoutMs?: number } = {}): CliResult {
  const r = spawnSync(process.execPath, [join(REPO, "bin", "sage.js"), ...args], {
    cwd: options.cwd ?? REPO,
    env: { ...process.env, ...options.env },
    encoding: "utf8",
    timeout: options.timeoutMs ?? 180_000,
    // Past its guard a CLI is killed outright: a `sage run` sent SIGTERM stops its worker but waits on
    // for the job, and this synchronous call, the test file and `npm test` with it.
    killSignal: "SIGKILL",
  });
  return { code: r.status ?? 1, stdout: r.stdout, stderr: r.stderr };
}

/** Starts `sage <args>` as a background child process (e.g. a worker to kill). */
export function sageCliBackground(args: string[], options: { cwd?: string; env?: Record<string, string> } = {}) {
  return spawn(process.execPath, [join(REPO, "bin", "sage.js"), ...args], {
    cwd: options.cwd ?? REPO,
    env: { ...process.env, ...options.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
}

/** Environment variables that point a CLI child at a test config. */
export function cliEnv(config: SageConfig): Record<string, string> {
  return {
    SAGE_TEMPORAL_ADDRESS: config.temporal.address,
    SAGE_TEMPORAL_TASK_QUEUE: config.temporal["task-queue"] ?? "",
    SAGE_DATA_DIR: config["data-dir"],
    SAGE_TEMPORAL_HEARTBEAT_TIMEOUT: String(config.temporal["heartbeat-timeout"]),
    SAGE_LOG_LEVEL: config.log.level,
  };
}

/** A `sage worker` child process serving a pipeline module on the config's task queue. */
export interface WorkerProcess {
  child: ChildProcess;
  identity: string;
  log(): string;
  /** SIGTERM (graceful: in-flight activities finish), SIGKILL if it lingers; resolves on exit. */
  stop(): Promise<void>;
}

/** Starts `sage worker <fixture>` and waits until it polls the task queue. */
export async function startWorkerProcess(
  fixture: string,
  config: SageConfig,
  client: SageClient,
  env: Record<string, string> = cliEnv(config),
  /** More `sage worker` flags, e.g. `--config <file>` for settings no environment variable carries. */
  flags: string[] = [],
): Promise<WorkerProcess> {
  const child = sageCliBackground(["worker", fixture, ...flags], { env });
  let output = "";
  child.stdout?.on("data", (d: Buffer) => (output += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (output += d.toString()));
  const exited = new Promise<void>((done) => child.once("exit", () => done()));
  const identity = `sage-worker@${child.pid}`;
  const worker: WorkerProcess = {
    child,
    identity,
    log: () => output,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
      await exited;
      clearTimeout(timer);
    },
  };
  try {
    await until(`worker ${identity} to poll`, async () => {
      if (child.exitCode !== null) throw new Error(`worker exited early (${child.exitCode}): ${output}`);
      return (await pollers(client, config)).includes(identity) ? true : undefined;
    });
  } catch (err) {
    await worker.stop();
    throw new Error(`${(err as Error).message}\nworker output:\n${output}`);
  }
  return worker;
}

/** Identities polling the config's task queue for activities. */
async function pollers(client: SageClient, config: SageConfig): Promise<string[]> {
  const r = await client.temporal.workflowService.describeTaskQueue({
    namespace: config.temporal.namespace,
    taskQueue: { name: config.temporal["task-queue"]! },
    taskQueueType: proto.temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
  });
  return (r.pollers ?? []).map((p) => p.identity ?? "");
}

/** Sets environment variables of this process (`undefined` deletes one): a fixture reads them when it is compiled. */
export function useEnv(env: Record<string, string | undefined>): void {
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
}
