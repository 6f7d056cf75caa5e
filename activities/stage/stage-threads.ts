/**
 * The worker's stage threads (a piscina pool, started with the worker or on first use): the main thread keeps the
 * activity (heartbeats, cancellation, metrics) and hands the unit's descriptor to a thread, which
 * runs the fused chain; a streaming unit's main thread also keeps its Kafka transaction, and its
 * thread hands back the messages to commit. A cancellation reaches the thread through a shared flag; an error comes
 * back as fields and is rebuilt with its code and retriability; a thread that dies fails only that
 * attempt (`StageThreadError`, retried), and the pool starts another thread.
 */
import { randomUUID } from "node:crypto";
import { fileURLToPath } from "node:url";
import { BroadcastChannel, MessageChannel, type MessagePort } from "node:worker_threads";
import { CancelledFailure } from "@temporalio/common";
import { Piscina } from "piscina";
import type { Logger } from "pino";
import type { SageConfig } from "../../core/config/schema.js";
import { SageError, StageThreadError } from "../../core/errors.js";
import type { StageInput, StageOutput } from "../../core/plan/job.js";
import { operatorTryFailed } from "../../monitoring/stage-metrics.js";
import { cpuProfileDir } from "./thread-profile.js";
import type { StageThreadData, ThreadFailure, ThreadMessage, ThreadOutcome, ThreadTask, WarmUp } from "./stage-thread.js";
import type { StageExecution, StreamChainResult, StreamParts, StreamWritten } from "./unit.js";
import type { UnitMessage } from "../../connectors/kafka/sink.js";

/** The thread entry: registers the TypeScript loader, then loads `stage-thread.ts`. */
const ENTRY = fileURLToPath(new URL("./stage-thread-entry.mjs", import.meta.url));
/** How long `close` waits for the threads to close their functions. */
const CLOSE_WAIT_MS = 10_000;

/** How the pool is made. */
export interface StageThreadsOptions {
  /** Threads in the pool (2 or more). */
  threads: number;
  /** The pipeline module (an absolute path) and which pipeline of it: each thread loads it as the worker did. */
  module: string;
  pipelineName?: string;
  dataDir: string;
  /** The worker's configuration and identity: each thread opens the services its functions use with them. */
  config: SageConfig;
  identity: string;
  logLevel: string;
  logger: Logger;
}

/** The error a thread's unit ended with, as the class the main thread would have thrown. */
export function errorOf(failure: ThreadFailure): Error {
  if (failure.cancelled) return new CancelledFailure(failure.message);
  const err = failure.sage
    ? new SageError(failure.sage.code, failure.message, { retriable: failure.sage.retriable, scope: failure.sage.scope, input: failure.sage.input })
    : new Error(failure.message);
  Object.defineProperty(err, "name", { value: failure.name, configurable: true, writable: true });
  if (failure.stack) err.stack = failure.stack;
  return err;
}

/** A pool of stage threads for one worker process. */
export class StageThreads {
  private pool: Piscina<ThreadTask | WarmUp, ThreadOutcome> | null = null;
  private readonly channel = `sage-stage-threads-${randomUUID()}`;

  constructor(private readonly options: StageThreadsOptions) {}

  /** Threads in the pool. */
  get size(): number {
    return this.options.threads;
  }

  /**
   * Starts the threads and waits until each has loaded the pipeline module (the worker does this
   * before it polls: a unit never waits for a thread to start). Returns the milliseconds it took.
   */
  async start(): Promise<number> {
    const started = performance.now();
    const pool = this.poolOf();
    const arrived = new Int32Array(new SharedArrayBuffer(4));
    const warmed = await Promise.all(Array.from({ length: this.size }, () => pool.run({ arrived, threads: this.size })));
    for (const w of warmed) if (!w.ok) throw errorOf(w.failure);
    return performance.now() - started;
  }

  private poolOf(): Piscina<ThreadTask | WarmUp, ThreadOutcome> {
    if (this.pool) return this.pool;
    const { threads, module, pipelineName, dataDir, config, identity, logLevel, logger } = this.options;
    const profileDir = cpuProfileDir(process.execArgv);
    const workerData: StageThreadData = {
      module,
      ...(pipelineName ? { pipelineName } : {}),
      dataDir,
      config,
      identity,
      logLevel,
      channel: this.channel,
      ...(profileDir ? { cpuProfileDir: profileDir } : {}),
    };
    const pool = new Piscina<ThreadTask | WarmUp, ThreadOutcome>({
      filename: ENTRY,
      minThreads: threads,
      maxThreads: threads,
      // A thread keeps its opened functions until the pool closes: never retire an idle one.
      idleTimeout: Number.POSITIVE_INFINITY,
      // An idle thread waits for its next unit without blocking its event loop ("sync" would): `close` reaches it.
      atomics: "async",
      // The main thread's flags (a profiler, a loader) are not the thread's: the entry registers the
      // loader itself, and under --cpu-prof the thread profiles itself (thread-profile.ts).
      execArgv: [],
      workerData,
    });
    pool.on("error", (err: unknown) => logger.error({ err }, "a stage thread failed outside a unit"));
    this.pool = pool;
    return pool;
  }

  /** Runs bounded unit `input` on a thread; `signal` is the activity's cancellation, `execution` its run and attempt. */
  async run(input: StageInput, bindings: Record<string, unknown>, signal: AbortSignal, execution?: StageExecution): Promise<StageOutput> {
    return (await this.dispatch(input, bindings, signal, execution)).output;
  }

  /**
   * Runs the chain of streaming unit `input` on a thread over its batches (`records`, copied over),
   * from `recountFrom` per slice: the messages it wrote come back, for the caller's transaction;
   * with `parts`, in parts while the chain runs (through a port of their own), and the rest with
   * the result, once every part has arrived.
   */
  async runStream(
    input: StageInput,
    records: Uint8Array[],
    recountFrom: number[],
    bindings: Record<string, unknown>,
    signal: AbortSignal,
    execution?: StageExecution,
    parts?: StreamParts,
  ): Promise<StreamChainResult> {
    const channel = parts ? new MessageChannel() : null;
    let arrived = 0;
    let onPart: (() => void) | null = null;
    channel?.port1.on("message", (messages: UnitMessage[]) => {
      parts!.take(messages);
      arrived++;
      onPart?.();
    });
    try {
      const handed = channel ? { parts: { port: channel.port2, part: parts!.part } } : {};
      const { output, written } = await this.dispatch(input, bindings, signal, execution, { records, recountFrom, ...handed }, channel ? [channel.port2] : []);
      if (!written) throw new StageThreadError(`the thread running stage ${input.stage} (shard ${input.shard}) returned no messages`);
      // The result and the parts travel apart: the rest goes after every part.
      while (arrived < written.parts) await new Promise<void>((resolve) => (onPart = resolve));
      return { output, written };
    } finally {
      channel?.port1.close();
    }
  }

  private async dispatch(
    input: StageInput,
    bindings: Record<string, unknown>,
    signal: AbortSignal,
    execution: StageExecution | undefined,
    stream?: ThreadTask["stream"],
    transferList: MessagePort[] = [],
  ): Promise<{ output: StageOutput; written?: StreamWritten }> {
    const cancel = new Int32Array(new SharedArrayBuffer(4));
    const onAbort = (): void => void Atomics.store(cancel, 0, 1);
    if (signal.aborted) onAbort();
    signal.addEventListener("abort", onAbort, { once: true });
    let outcome: ThreadOutcome;
    try {
      outcome = await this.poolOf().run({ input, bindings, cancel, ...(execution ? { execution } : {}), ...(stream ? { stream } : {}) }, { transferList });
    } catch (err) {
      throw new StageThreadError(`the thread running stage ${input.stage} (shard ${input.shard}) of job ${input.jobId} died: ${(err as Error).message}`, {
        cause: err,
      });
    } finally {
      signal.removeEventListener("abort", onAbort);
    }
    for (const t of outcome.tries) operatorTryFailed(t, t.operator, t.retried);
    if (outcome.ok && outcome.output) return { output: outcome.output, ...(outcome.written ? { written: outcome.written } : {}) };
    if (outcome.ok) throw new StageThreadError(`the thread running stage ${input.stage} (shard ${input.shard}) returned no output`);
    throw errorOf(outcome.failure);
  }

  /** Asks every thread to close its functions (waits up to 10 s), then ends the pool. */
  async close(): Promise<void> {
    const pool = this.pool;
    if (!pool) return;
    this.pool = null;
    const expected = pool.threads.length;
    const channel = new BroadcastChannel(this.channel);
    const closed = new Set<number>();
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, CLOSE_WAIT_MS);
      channel.onmessage = (event: unknown) => {
        const message = (event as { data: ThreadMessage }).data;
        if (message.type === "closed") closed.add(message.threadId);
        if (closed.size >= expected) {
          clearTimeout(timer);
          resolve();
        }
      };
      if (expected === 0) resolve();
      channel.postMessage({ type: "close" } satisfies ThreadMessage);
    });
    channel.close();
    if (closed.size < expected) this.options.logger.warn({ closed: closed.size, threads: expected }, "not every stage thread closed its functions in time");
    await pool.destroy();
  }
}
