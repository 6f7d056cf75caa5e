/**
 * The activities a worker registers for one pipeline: the control activities and one
 * `stage:<name>` activity per stage the pipeline can compile to.
 */
import { ApplicationFailure, CancelledFailure, Context } from "@temporalio/activity";
import type { Logger } from "pino";
import { BudgetPausedError, ModelUnavailableError, SageError } from "../core/errors.js";
import { ABORT_ACTIVITY, COMMIT_ACTIVITY, SPLITS_ACTIVITY, stageActivityType, type StageInput, type StageOutput } from "../core/plan/job.js";
import { abortJob, commitJob, listSplits, type ControlInput } from "./job-control.js";
import type { OperatorRegistry } from "./registry.js";
import type { SageConfig } from "../core/config/schema.js";
import { runStage } from "./stage/run-stage.js";
import { retainBatch, retainDirOf, retains, type RetainBounds } from "../connectors/kafka/retained-input.js";
import { noticeBudgetPause } from "./stage/budget-pause-notice.js";
import type { KafkaSinkHost } from "../connectors/kafka/sink.js";
import { KeyedStateHost, type KeyedStateOptions } from "./stage/keyed-state.js";
import { stageDone, stageFailed, stageStarted } from "../monitoring/stage-metrics.js";
import type { StageThreads } from "./stage/stage-threads.js";
import type { StreamParts } from "./stage/unit.js";
import { threadPlacement } from "./stage/thread-placement.js";

/** Job parallelisms a worker registers stage activity names for (stage names depend on cuts). */
const SERVED_PARALLELISM = 16;

/** Converts our errors into Temporal failures whose type is the error code. */
async function asFailure<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    if (err instanceof BudgetPausedError) {
      // The workflow waits on a timer (workflows/budget-pause.ts); a workflow from before that retries after the same wait.
      const details = { until: err.until, reason: err.reason };
      throw ApplicationFailure.create({
        message: err.message,
        type: err.code,
        details: [details],
        nextRetryDelay: Math.max(1_000, err.until - Date.now()),
        cause: err,
      });
    }
    if (err instanceof SageError) {
      // An endpoint's Retry-After becomes the delay before Temporal's next attempt.
      const retryAfter = err instanceof ModelUnavailableError && err.retryAfterMs !== null ? { nextRetryDelay: err.retryAfterMs } : {};
      throw ApplicationFailure.create({ message: err.message, type: err.code, nonRetryable: !err.retriable, cause: err, ...retryAfter });
    }
    throw err;
  }
}

function activityLogger(base: Logger, input: { jobId: string; pipeline: string }, extra: Record<string, unknown> = {}): Logger {
  const info = Context.current().info;
  return base.child({ pipeline: input.pipeline, jobId: input.jobId, activity: info.activityType, attempt: info.attempt, ...extra });
}

/** Every stage name the pipeline compiles to for the served parallelisms, with and without fusion. */
export function servedStageNames(registry: OperatorRegistry, configParallelism: number): string[] {
  const names = new Set<string>();
  const parallelisms = new Set([configParallelism, ...Array.from({ length: SERVED_PARALLELISM }, (_, i) => i + 1)]);
  for (const p of parallelisms) for (const fusion of [true, false]) for (const s of registry.compile(p, fusion).plan.stages) names.add(s.name);
  return [...names];
}

/** Builds the activity map for `Worker.create`. */
export function createActivities(options: {
  registry: OperatorRegistry;
  dataDir: string;
  logger: Logger;
  configParallelism: number;
  /** Kafka producers for streaming sinks (created on first use). */
  kafka?: () => KafkaSinkHost;
  /** How keyed streaming state is kept (default: in memory). */
  state?: KeyedStateOptions;
  /** The task queue only this worker polls: a keyed streaming unit run as an activity names it, so the next one comes back here. */
  ownQueue?: string;
  /** Stage threads: units whose work is CPU-bound run there (`thread-placement.ts`); absent: all on the main thread. */
  threads?: StageThreads;
  /** The worker's LLM settings: an LLM pipeline's splits are sized by tokens under its tokens-per-minute limits. */
  llm?: SageConfig["llm"];
  /** `whatif.retain`: how much of each streaming source partition's committed input to keep a copy of (absent: none). */
  retain?: RetainBounds;
}) {
  const { registry, dataDir, logger } = options;
  const kafka = options.kafka;
  let keyedState: KeyedStateHost | null = null;
  const keyedStateHost = kafka
    ? (): KeyedStateHost => (keyedState ??= new KeyedStateHost(kafka, logger.child({ component: "keyed-state" }), options.state))
    : undefined;
  const activities: Record<string, (input: never) => Promise<unknown>> = {
    [SPLITS_ACTIVITY]: (input: ControlInput) => asFailure(() => listSplits(input, registry, activityLogger(logger, input), options.llm)),
    [COMMIT_ACTIVITY]: (input: ControlInput) => asFailure(() => commitJob(input, registry, dataDir)),
    [ABORT_ACTIVITY]: (input: ControlInput) => asFailure(() => abortJob(input, dataDir)),
  };
  const threads = options.threads;
  /** True when a stage thread may run `input` (a plan this worker cannot serve fails on the main thread, as without threads). */
  const onThread = (input: StageInput): boolean => {
    let compiled;
    try {
      compiled = registry.resolve(input);
    } catch {
      return false;
    }
    const stage = compiled.plan.stages.find((s) => s.id === input.stage);
    return stage !== undefined && threadPlacement(input, compiled, stage).thread;
  };
  /** `whatif.retain`: a copy of a committed unit's source batches; best effort (a copy not kept is logged, the unit stands). */
  const retainSource = async (input: StageInput, records: Uint8Array[], log: Logger): Promise<void> => {
    try {
      const plan = registry.resolve(input).plan;
      const sources = new Set(plan.nodes.flatMap((n) => (n.source?.kind === "kafka" ? n.source.topics : [])));
      const dir = retainDirOf(dataDir, input.pipeline, input.jobId);
      for (const [i, slice] of (input.stream?.slices ?? []).entries()) {
        if (sources.has(slice.topic) && records[i]) await retainBatch(dir, slice, records[i], options.retain!);
      }
    } catch (err) {
      log.warn({ err }, "whatif.retain: no copy kept of the unit's input");
    }
  };
  const stage = (input: StageInput, ...records: Uint8Array[]) =>
    asFailure(async () => {
      const log = activityLogger(logger, input, { stage: input.stage, shard: input.shard });
      const started = Date.now();
      const ctx = Context.current();
      stageStarted(input, ctx.info.attempt, records, input.batchRef?.bytes);
      // The runner asks per record; a flag set by the abort event is cheaper than the signal's getter.
      let cancelled = ctx.cancellationSignal.aborted;
      ctx.cancellationSignal.addEventListener("abort", () => (cancelled = true), { once: true });
      // A local activity (streaming stages) cannot heartbeat: its workflow task keeps it alive.
      const local = ctx.info.isLocal;
      const heartbeat = (details?: unknown): void => {
        if (!local) ctx.heartbeat(details);
        if (ctx.cancellationSignal.aborted) throw new CancelledFailure(`stage ${input.stage} of job ${input.jobId} was cancelled`);
      };
      // Heartbeat on a timer too: a slow operator (a model call per record) may take longer than
      // the heartbeat timeout for 1000 records, and a synchronous chain heartbeats via `tick`.
      const timer = local ? undefined : setInterval(() => ctx.heartbeat(), Math.max(250, Math.floor(input.runtime.heartbeatTimeoutMs / 4)));
      let out: StageOutput;
      try {
        const host = {
          registry,
          dataDir,
          logger: log,
          heartbeat,
          cancelled: () => cancelled,
          ...(options.kafka ? { kafka: options.kafka } : {}),
          ...(keyedStateHost ? { keyedState: keyedStateHost } : {}),
          ...(ctx.info.workflowExecution
            ? { execution: { workflowId: ctx.info.workflowExecution.workflowId, runId: ctx.info.workflowExecution.runId, attempt: ctx.info.attempt } }
            : {}),
        };
        const thread = threads !== undefined && onThread(input);
        // A streaming unit's runner keeps its transaction on this thread and hands the chain to a stage thread.
        const streamThread =
          thread && input.stream
            ? (unit: StageInput, batches: Uint8Array[], from: number[], parts?: StreamParts) =>
                threads.runStream(unit, batches, from, log.bindings(), ctx.cancellationSignal, host.execution, parts)
            : undefined;
        out =
          thread && !input.stream
            ? await threads.run(input, log.bindings(), ctx.cancellationSignal, host.execution)
            : await runStage(input, streamThread ? { ...host, streamThread } : host, log, records);
      } catch (err) {
        stageFailed(input, err);
        if (err instanceof BudgetPausedError && input.stream) await noticeBudgetPause(ctx, err, log);
        throw err;
      } finally {
        clearInterval(timer);
      }
      if (retains(options.retain) && input.stream && records.length > 0 && !input.runtime.redrive) await retainSource(input, records, log);
      const ms = Date.now() - started;
      log.debug({ ms }, "stage done");
      stageDone(input, out.counts, ms / 1000);
      // Only a keyed streaming unit (it reports its state) has a copy worth coming back to.
      return options.ownQueue && !local && out.states ? { ...out, ownerQueue: options.ownQueue } : out;
    });
  for (const name of servedStageNames(registry, options.configParallelism)) activities[stageActivityType(name)] = stage;
  return activities;
}
