/**
 * One stage thread of a worker's pool: loads the pipeline module as the worker does, keeps an
 * operator registry of its own (each function and each service it uses opened once in this thread,
 * closed when the pool closes), and runs one stage unit at a time with the stage runner. A bounded
 * unit's thread reads its split or edge file itself and stages its output itself: only the unit's
 * descriptor comes in and the stage's output descriptor (counts, edge file references) goes back.
 * A streaming unit's batches come in as the bytes they arrived as, and the Kafka messages its chain
 * wrote go back, for the main thread to commit in the unit's transaction.
 */
import { BroadcastChannel, threadId, workerData, type MessagePort } from "node:worker_threads";
import { CancelledFailure } from "@temporalio/common";
import type { Logger } from "pino";
import { SageError } from "../../core/errors.js";
import type { StageInput, StageOutput } from "../../core/plan/job.js";
import type { SageConfig } from "../../core/config/schema.js";
import { createLogger } from "../../client/logger.js";
import { loadPipeline } from "../../cli/module-loader.js";
import { holdFailedTries, takeFailedTries, type FailedTry } from "../../monitoring/stage-metrics.js";
import { OperatorRegistry } from "../registry.js";
import { serviceRegistryOf } from "../services.js";
import { runStage, runStreamChain } from "./run-stage.js";
import { profileThisThread } from "./thread-profile.js";
import type { StageExecution, StageHost, StreamWritten } from "./unit.js";
import type { UnitMessage } from "../../connectors/kafka/sink.js";

/** What every thread of one pool is started with. */
export interface StageThreadData {
  /** The pipeline module the worker serves, and which pipeline of it. */
  module: string;
  pipelineName?: string;
  dataDir: string;
  /** The worker's configuration and identity, for the thread's own services. */
  config: SageConfig;
  identity: string;
  logLevel: string;
  /** The pool's broadcast channel: `close` asks each thread to close its functions. */
  channel: string;
  /** Where the thread writes its CPU profile when the pool closes (the worker runs under `--cpu-prof`); absent: none. */
  cpuProfileDir?: string;
}

/** One unit for a thread: its input, the activity logger's bindings, and the flag the main thread sets on cancellation. */
export interface ThreadTask {
  input: StageInput;
  bindings: Record<string, unknown>;
  /** Shared with the main thread: non-zero once the activity was cancelled. */
  cancel: Int32Array;
  /** The workflow run and attempt of the activity (what lineage names). */
  execution?: StageExecution;
  /** A streaming unit: its encoded batches (one per slice) and where each slice's records start to run again for their counts only. */
  stream?: {
    records: Uint8Array[];
    recountFrom: number[];
    /** Where the chain posts its messages in parts of `part` while it runs (`StreamParts`; absent: all with the outcome). */
    parts?: { port: MessagePort; part: number };
  };
}

/**
 * The warm-up the worker runs before it polls, one per thread: each loads the pipeline module, then
 * holds its thread until every thread has one (`arrived` counts them), so that no thread takes two.
 */
export interface WarmUp {
  arrived: Int32Array;
  threads: number;
}

/** An error a thread's unit ended with, as plain fields (its class does not cross threads). */
export interface ThreadFailure {
  name: string;
  message: string;
  stack?: string;
  /** Our errors' code, retriability, scope and input flag. */
  sage?: { code: string; retriable: boolean; scope: SageError["scope"]; input: boolean };
  cancelled?: boolean;
}

/** How a thread's unit ended, with the failed tries of its user functions (for the main thread's metrics). */
export type ThreadOutcome =
  { ok: true; output: StageOutput | null; written?: StreamWritten; tries: FailedTry[] } | { ok: false; failure: ThreadFailure; tries: FailedTry[] };

/** What a thread says on the pool's channel. */
export type ThreadMessage = { type: "close" } | { type: "closed"; threadId: number };

const data = workerData as StageThreadData;
const logger: Logger = createLogger(data.logLevel, { thread: threadId });
const writeProfile = profileThisThread(data.cpuProfileDir);
let registry: Promise<OperatorRegistry> | null = null;
holdFailedTries();

/** This thread's registry, the pipeline module loaded on first use. */
function registryOf(): Promise<OperatorRegistry> {
  registry ??= loadPipeline(data.module, data.pipelineName).then((p) => {
    const log = logger.child({ pipeline: p.name });
    return new OperatorRegistry(p, log, serviceRegistryOf(p, data.config, data.dataDir, data.identity, log));
  });
  registry.catch(() => (registry = null));
  return registry;
}

// The module loads as the thread starts (the worker starts its threads before it polls); a failure is the first unit's error.
registryOf().catch(() => undefined);

const channel = new BroadcastChannel(data.channel);
channel.unref();
channel.onmessage = (event: unknown) => {
  const message = (event as { data: ThreadMessage }).data;
  if (message.type !== "close") return;
  const closing = (registry ? registry.then((r) => r.close()) : Promise.resolve()).finally(() =>
    writeProfile().catch((err: unknown) => logger.warn({ err }, "writing the stage thread's CPU profile failed")),
  );
  closing.then(
    () => channel.postMessage({ type: "closed", threadId } satisfies ThreadMessage),
    (err: unknown) => {
      logger.error({ err }, "closing a stage thread's functions failed");
      channel.postMessage({ type: "closed", threadId } satisfies ThreadMessage);
    },
  );
};

function failureOf(err: unknown, cancelled: boolean): ThreadFailure {
  const e = err instanceof Error ? err : new Error(String(err));
  return {
    name: e.name,
    message: e.message,
    ...(e.stack ? { stack: e.stack } : {}),
    ...(err instanceof SageError ? { sage: { code: err.code, retriable: err.retriable, scope: err.scope, input: err.input } } : {}),
    ...(cancelled || err instanceof CancelledFailure ? { cancelled: true } : {}),
  };
}

/** Loads the pipeline module, then waits (at most 60 s) until every thread of the pool has arrived. */
async function warmUp(task: WarmUp): Promise<ThreadOutcome> {
  try {
    await registryOf();
  } catch (err) {
    return { ok: false, failure: failureOf(err, false), tries: [] };
  }
  Atomics.add(task.arrived, 0, 1);
  const deadline = Date.now() + 60_000;
  while (Atomics.load(task.arrived, 0) < task.threads && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  return { ok: true, output: null, tries: [] };
}

/** Runs one unit, or a warm-up (the pool's task function). */
export default async function runThreadTask(task: ThreadTask | WarmUp): Promise<ThreadOutcome> {
  if ("arrived" in task) return warmUp(task);
  const cancelled = (): boolean => Atomics.load(task.cancel, 0) !== 0;
  const log = logger.child(task.bindings);
  try {
    const host: StageHost = {
      registry: await registryOf(),
      dataDir: data.dataDir,
      logger: log,
      // The main thread heartbeats the activity; here a heartbeat only notices a cancellation.
      heartbeat: () => {
        if (cancelled()) throw new CancelledFailure(`stage ${task.input.stage} of job ${task.input.jobId} was cancelled`);
      },
      cancelled,
      ...(task.execution ? { execution: task.execution } : {}),
    };
    if (task.stream) {
      const handed = task.stream.parts;
      const parts = handed ? { part: handed.part, take: (messages: UnitMessage[]) => handed.port.postMessage(messages) } : undefined;
      const { output, written } = await runStreamChain(task.input, host, log, task.stream.records, task.stream.recountFrom, parts);
      return { ok: true, output, written, tries: takeFailedTries() };
    }
    const output = await runStage(task.input, host, log);
    return { ok: true, output, tries: takeFailedTries() };
  } catch (err) {
    return { ok: false, failure: failureOf(err, cancelled()), tries: takeFailedTries() };
  }
}
