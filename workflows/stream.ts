/**
 * The partition workflow of a streaming job. The shim signals micro-batches of the source
 * partitions this workflow owns; the workflow keeps the next expected offset per partition (so a
 * batch delivered twice is dropped, and one cut differently after a crash is trimmed), runs each
 * batch through the stage graph in arrival order, and continues as new with its offset table and
 * pending batches when history grows. It never runs user code.
 */
import { ApplicationFailure, allHandlersFinished, condition, continueAsNew, patched, setHandler, sleep, workflowInfo } from "@temporalio/workflow";
import { deadLetterTotal, jobContextOf, type LlmBudgetPause } from "../core/plan/job.js";
import {
  entryTopicsOf,
  keyedOperatorsOf,
  topicPartition,
  type AcceptedBatch,
  type BatchDescription,
  type StreamJobInput,
  type StreamProgress,
  type StreamState,
} from "../core/plan/stream.js";
import { STREAMING_RETRY, activityOptions, localActivityOptions } from "./activity-stubs.js";
import {
  batchSignal,
  budgetPauseSignal,
  holdSignal,
  savepointAckSignal,
  savepointBarrierSignal,
  savepointReleaseSignal,
  stopSignal,
  streamInputQuery,
  streamProgressQuery,
} from "./contract.js";
import { StageGraph, type ActivityCaller } from "./stage-graph.js";
import { KeyGroupOwners } from "./key-group-owners.js";

/** Most batches run by one activity, and most encoded bytes they may carry (well below the payload and gRPC limits). */
const MERGE_BATCHES = 16;
const MERGE_BYTES = 1024 * 1024;

/**
 * Most encoded bytes of pending batches a run hands to the next through continue-as-new: they all
 * go in that one command, which the server refuses over 2 MiB. Past it, the run works the queue
 * down first (the shim holds at most `kafka.max-unacked-batches`, so that ends).
 */
const CARRY_BYTES = 1024 * 1024;

/** The head of the queue: as many batches for the same stage (`stageOf`) as fit in one activity call. */
function mergeable<T extends { records: Uint8Array; batch: { topic: string } }>(pending: T[], stageOf: (topic: string) => string | undefined): T[] {
  let bytes = 0;
  let n = 0;
  const stage = pending[0] ? stageOf(pending[0].batch.topic) : undefined;
  while (
    n < pending.length &&
    n < MERGE_BATCHES &&
    (n === 0 || (bytes + pending[n]!.records.byteLength <= MERGE_BYTES && stageOf(pending[n]!.batch.topic) === stage))
  )
    bytes += pending[n++]!.records.byteLength;
  return pending.slice(0, n);
}

/**
 * The watermark of each keyed operator this workflow has run, by uid: the least largest event time
 * over the source partitions its stage has heard of, minus the bound, minus 1.
 */
function watermarksOf(plan: StreamJobInput["plan"], eventTime: Record<string, Record<string, number>>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const stage of plan.stages) {
    const seen = eventTime[stage.id];
    if (!seen) continue;
    // Origins only: `@origin` is when one last moved, `edge|origin` what a repartition sent on.
    const times = Object.entries(seen)
      .filter(([origin]) => !origin.startsWith("@") && !origin.includes("|"))
      .map(([, t]) => t);
    if (times.length === 0) continue;
    for (const uid of keyedOperatorsOf(stage)) {
      const node = plan.nodes.find((n) => n.id === uid);
      const bound = Math.max(0, ...(node?.eventTime ?? []).map((s) => s?.outOfOrdernessMs ?? 0));
      out[uid] = Math.min(...times) - bound - 1;
    }
  }
  return out;
}

/** Patch id of the timer before a checkpoint's close (histories recorded before it replay without it). */
const CLOSE_AFTER_TIMER = "sage-close-after-timer";
/** Patch id of the timer that wakes an idle run when its checkpoint interval has passed. */
const IDLE_CHECKPOINT = "sage-idle-checkpoint";
/**
 * The close checks the carry budget again after its timer: batches signalled while the timer ran
 * can take what it carries past the 2 MiB payload limit (seen in the stateful bench at 1M events:
 * 2,140,288 bytes, and the run could never close). Over the budget, the run works the queue down first.
 */
const CARRY_AFTER_TIMER = "sage-carry-after-timer";

/** Runs one partition workflow until stopped; returns its final progress. */
export async function streamWorkflow(input: StreamJobInput, ...pendingRecords: Uint8Array[]): Promise<StreamProgress> {
  const { plan, runtime } = input;
  const state: StreamState = input.state ?? {
    next: {},
    processed: {},
    pending: [],
    counts: {},
    batches: 0,
    records: 0,
    duplicatesDropped: 0,
    activities: 0,
    runs: 0,
    stopping: false,
  };
  state.runs++;
  const pending: Array<{ batch: AcceptedBatch; records: Uint8Array }> = state.pending.map((batch, i) => ({ batch, records: pendingRecords[i]! }));
  const totals = { counts: state.counts, deadLetters: deadLetterTotal(state.counts) };
  /**
   * Set while the batch being run waits for the LLM budget: no workflow timer of its own (Temporal
   * retries the stage after the wait), only what the worker said by signal, until the batch is done.
   */
  let budgetPause: LlmBudgetPause | undefined;
  let phase: StreamProgress["phase"] = state.stopping ? "stopping" : "running";

  const runStartedAt = Date.now();
  const batchesAtStart = state.batches;
  /** When this run first wanted to checkpoint (the checkpoint's duration runs from there to the close). */
  let wantedAt: number | null = null;
  /** This run has used its budget of events or history bytes, or its checkpoint interval: it asks the shims to hold, then checkpoints. */
  const wantsCheckpoint = (): boolean =>
    used(1) || (!!runtime.checkpointIntervalMs && state.batches > batchesAtStart && Date.now() - runStartedAt >= runtime.checkpointIntervalMs);
  /** The run has used `times` its budget of events or of history bytes. */
  const used = (times: number): boolean =>
    workflowInfo().historyLength >= times * runtime.eventsPerRun || workflowInfo().historySize >= times * runtime.historyBytesPerRun;
  /** A shim said it holds its batches for this run. */
  let held = false;
  /**
   * Checkpoint now: the server suggests it; or the run used its budget and a shim holds (or no shim
   * answered by twice the budget: it then closes anyway, racing signals).
   */
  const mustCheckpoint = (): boolean => workflowInfo().continueAsNewSuggested || (wantsCheckpoint() && (held || used(2)));

  const progress = (): StreamProgress => ({
    pipeline: plan.pipeline,
    jobId: input.jobId,
    planHash: plan.hash,
    index: input.index,
    runId: workflowInfo().runId,
    checkpoint: wantsCheckpoint(),
    phase,
    pending: pending.length,
    batches: state.batches,
    records: state.records,
    duplicatesDropped: state.duplicatesDropped,
    activities: state.activities,
    runs: state.runs,
    next: state.next,
    processed: state.processed,
    counts: totals.counts,
    deadLetters: totals.deadLetters,
    ...(state.eventTime ? { eventTime: state.eventTime } : {}),
    ...(state.restores ? { restores: state.restores } : {}),
    ...(state.lastCheckpoint ? { lastCheckpoint: state.lastCheckpoint } : {}),
    ...(state.stateSize ? { state: state.stateSize } : {}),
    ...(state.eventTime ? { watermarks: watermarksOf(plan, state.eventTime) } : {}),
    ...(state.barrier ? { barrier: state.barrier } : {}),
    ...(state.fromSavepoint ? { fromSavepoint: state.fromSavepoint } : {}),
    ...(budgetPause ? { llmBudgetPause: budgetPause } : {}),
  });
  setHandler(streamProgressQuery, progress);
  setHandler(streamInputQuery, () => {
    const { state: _carried, ...rest } = input;
    return rest;
  });
  const accept = (batch: BatchDescription, records: Uint8Array): void => {
    const tp = topicPartition(batch.topic, batch.partition);
    const next = state.next[tp];
    // Offsets have gaps (transaction markers, compaction): compare with >=, never ==.
    if (next !== undefined && batch.to < next) {
      state.duplicatesDropped += batch.count;
      return;
    }
    state.next[tp] = batch.to + 1;
    state.batches++;
    state.records += batch.count;
    pending.push({ batch: { ...batch, skipBelow: next ?? batch.from, seq: state.batches }, records });
  };
  setHandler(batchSignal, (batches, ...records) => {
    // Only a caller's bug sends this: fail the job rather than guess which records belong to which batch.
    if (batches.length !== records.length)
      throw ApplicationFailure.nonRetryable(`batch signal with ${batches.length} descriptions and ${records.length} record payloads`, "BAD_SIGNAL");
    batches.forEach((batch, i) => accept(batch, records[i]!));
  });
  setHandler(budgetPauseSignal, ({ reason, until }) => {
    budgetPause = { reason, until: new Date(until).toISOString(), units: 1 };
  });
  setHandler(holdSignal, (runId) => {
    if (runId === workflowInfo().runId) held = true;
  });
  setHandler(stopSignal, () => {
    state.stopping = true;
    phase = "stopping";
  });
  /** Barrier signals seen: the loop wakes on each, to stop or resume waiting for processing-time timers. */
  let barrierSignals = 0;
  setHandler(savepointBarrierSignal, (id) => {
    state.barrier = { id, acked: false };
    barrierSignals++;
  });
  setHandler(savepointAckSignal, (id) => {
    if (state.barrier?.id === id) state.barrier.acked = true;
  });
  setHandler(savepointReleaseSignal, (id) => {
    if (state.barrier?.id !== id) return;
    delete state.barrier;
    barrierSignals++;
  });

  const call: ActivityCaller = async (activity, ...args) => {
    state.activities++;
    return activity(...args);
  };
  const graph = new StageGraph({
    plan,
    context: jobContextOf(input),
    totals,
    call,
    // Local: the stage runs inside the workflow task that scheduled it (no activity task per batch).
    stages: runtime.localActivities ? { local: localActivityOptions(runtime, STREAMING_RETRY) } : { activity: activityOptions(runtime, STREAMING_RETRY) },
    // As activities, a keyed stage's units go back to the worker that holds its state (local ones run where the workflow is).
    ...(runtime.localActivities ? {} : { owners: new KeyGroupOwners((state.owners ??= {}), activityOptions(runtime, STREAMING_RETRY)) }),
    onOutput: (stage, out) => {
      if (out.eventTime) (state.eventTime ??= {})[stage.id] = out.eventTime;
      if (out.restored) state.restores = (state.restores ?? 0) + 1;
      if (out.states) Object.assign((state.stateSize ??= {}), out.states);
      if (out.nextTimer !== undefined) {
        const timers = (state.timers ??= {});
        if (out.nextTimer === null) delete timers[stage.id];
        else timers[stage.id] = out.nextTimer;
      }
    },
  });
  // Which stage a batch enters by: source topics the source stage, a repartition topic its keyed stage.
  const entryTopics = entryTopicsOf(plan, input.jobId);
  const stageOfTopic = (topic: string): string | undefined => entryTopics.get(topic);
  if (!plan.stages.some((s) => s.source)) throw ApplicationFailure.nonRetryable(`plan ${plan.hash} has no source stage`, "PLAN_MISMATCH");

  const pendingBytes = (): number => pending.reduce((n, p) => n + p.records.byteLength, 0);

  /**
   * Continues as new with the offset table, the counts and the batches not yet run; returns (without
   * closing) when batches that came in meanwhile took the carry over its budget.
   */
  const checkpoint = async (): Promise<void> => {
    // A close decided in the workflow task a local activity's result started can lose a batch signal
    // landing meanwhile: the server refuses the close (UnhandledCommand), and the retried task replays
    // the close before it delivers the signal, so the next run never sees it (seen at 1M events: one
    // signal of 12 batches, 21,818 records, gone). A durable timer first gives the close a task of its
    // own, whose retry delivers such a signal together with the timer, before the close.
    if (patched(CLOSE_AFTER_TIMER)) await sleep(1);
    await condition(allHandlersFinished);
    if (pendingBytes() > CARRY_BYTES && patched(CARRY_AFTER_TIMER)) return;
    const info = workflowInfo();
    state.lastCheckpoint = {
      at: new Date().toISOString(),
      run: state.runs,
      historyEvents: info.historyLength,
      historyBytes: info.historySize,
      carriedBatches: pending.length,
      ms: Date.now() - (wantedAt ?? Date.now()),
    };
    await continueAsNew<typeof streamWorkflow>(
      { ...input, state: { ...state, counts: totals.counts, pending: pending.map((p) => p.batch) } },
      ...pending.map((p) => p.records),
    );
  };

  /** Ms until this run's checkpoint interval has passed, when it has run a batch and the interval is what it waits for (else null). */
  const intervalLeft = (): number | null => {
    const interval = runtime.checkpointIntervalMs;
    if (!interval || state.batches === batchesAtStart || wantsCheckpoint()) return null;
    return patched(IDLE_CHECKPOINT) ? runStartedAt + interval - Date.now() : null;
  };

  /** The keyed stage whose processing-time timer is due first, and when. */
  const nextTimer = (): [stage: string, at: number] | null => {
    let first: [string, number] | null = null;
    for (const [stage, at] of Object.entries(state.timers ?? {})) if (!first || at < first[1]) first = [stage, at];
    return first;
  };
  /** Fires a keyed stage's due processing-time timers: a unit with no records, at the time the durable timer fired. */
  const fireTimers = async (stageId: string): Promise<void> => {
    const unit = {
      shard: `p${input.index}`,
      stream: {
        slices: [],
        workflowIndex: input.index,
        deadLetterTopic: input.stream.deadLetterTopic,
        ...(input.stream.lineageTopic ? { lineageTopic: input.stream.lineageTopic } : {}),
        ...(input.stream.lineageInputs ? { lineageInputs: true } : {}),
        timerPartition: input.index,
        processingTime: Date.now(),
        // The stage's event time so far comes back unchanged (a timer unit reads no watermark records).
        ...(state.eventTime?.[stageId] ? { eventTime: state.eventTime[stageId] } : {}),
      },
    };
    await graph.run(graph.stage(stageId), unit);
  };

  for (;;) {
    // A savepoint's barrier defers processing-time timers: what they would change must not move under it.
    const timer = state.barrier ? null : nextTimer();
    const barrierSeen = barrierSignals;
    const woken = () => pending.length > 0 || state.stopping || mustCheckpoint() || barrierSignals !== barrierSeen;
    // Processing-time timers of keyed stages sleep on a durable workflow timer: they fire at their time after any crash.
    // An idle run whose checkpoint interval is still running wakes when it ends too: workflow time stands still
    // without a new event, so neither the loop nor the shim's progress query would see the interval pass.
    const idle = intervalLeft();
    const wait = Math.min(timer ? timer[1] - Date.now() : Infinity, idle ?? Infinity);
    if (wait !== Infinity) await condition(woken, Math.max(1, wait));
    else await condition(woken);
    if (wantsCheckpoint()) wantedAt ??= Date.now();
    if (timer && Date.now() >= timer[1] && !held) {
      await fireTimers(timer[0]);
      budgetPause = undefined;
    }
    // A shim holds its batches for this run: close it now, before another batch (it waits meanwhile).
    if (held && pendingBytes() <= CARRY_BYTES) await checkpoint();
    if (pending.length > 0) {
      // Batches that queued up while the last one ran go together: one activity, one transaction.
      const take = mergeable(pending, stageOfTopic);
      const entry = graph.stage(stageOfTopic(take[0]!.batch.topic) ?? `(no stage reads topic ${take[0]!.batch.topic})`);
      const eventTime = state.eventTime?.[entry.id];
      const unit = {
        shard: `p${input.index}`,
        stream: {
          slices: take.map(({ batch: b }) => ({ topic: b.topic, partition: b.partition, from: b.from, to: b.to, skipBelow: b.skipBelow, seq: b.seq })),
          workflowIndex: input.index,
          deadLetterTopic: input.stream.deadLetterTopic,
          ...(input.stream.lineageTopic ? { lineageTopic: input.stream.lineageTopic } : {}),
          ...(input.stream.lineageInputs ? { lineageInputs: true } : {}),
          ...(eventTime ? { eventTime } : {}),
        },
      };
      await graph.run(
        entry,
        unit,
        undefined,
        take.map((p) => p.records),
      );
      budgetPause = undefined;
      pending.splice(0, take.length);
      for (const { batch } of take) state.processed[topicPartition(batch.topic, batch.partition)] = batch.to + 1;
    }
    if (state.stopping && pending.length === 0) {
      phase = "stopped";
      await condition(allHandlersFinished);
      return progress();
    }
    if (mustCheckpoint() && pendingBytes() <= CARRY_BYTES) await checkpoint();
  }
}
