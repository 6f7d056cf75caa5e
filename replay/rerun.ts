/**
 * `sage rerun`: runs a failed, terminated or timed-out job again as a new run of the same workflow
 * id, seeded with the splits the earlier run completed (read from its history). Their staged shards
 * are still on disk, so only the rest is recomputed and the output equals an uninterrupted run.
 *
 * Why a new seeded run rather than a Temporal reset: a reset replays the old run up to a workflow
 * task and re-executes everything after it, which with concurrent splits discards completed splits
 * that happen to finish after the reset point; a seeded run keeps every completed split, and can
 * start after a worker fix (as long as the plan hash is unchanged).
 */
import type { Client } from "@temporalio/client";
import { defaultPayloadConverter } from "@temporalio/common";
import proto from "@temporalio/proto";
import { PIPELINE_WORKFLOW, addCounts, sentBatches, type JobInput, type StageCounts, type StageInput, type StageOutput } from "../core/plan/job.js";
import { UsageError } from "../core/errors.js";
import { withDecodedPayloads } from "./history-payloads.js";

type HistoryEvent = proto.temporal.api.history.v1.IHistoryEvent;
const EventType = proto.temporal.api.enums.v1.EventType;

function decode<T>(payloads: proto.temporal.api.common.v1.IPayloads | null | undefined): T | undefined {
  const first = payloads?.payloads?.[0];
  return first ? defaultPayloadConverter.fromPayload<T>(first) : undefined;
}

/** The splits an earlier run completed, by source stage and split index, with their counts. */
export function completedSplits(events: HistoryEvent[]): Record<string, Record<number, StageCounts>> {
  const scheduled = new Map<string, StageInput>();
  const done = new Map<string, StageOutput>();
  for (const e of events) {
    if (e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED) {
      const a = e.activityTaskScheduledEventAttributes!;
      if (!a.activityType?.name?.startsWith("stage:")) continue;
      const input = decode<StageInput>(a.input);
      if (input) scheduled.set(String(e.eventId), input);
    } else if (e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED) {
      const a = e.activityTaskCompletedEventAttributes!;
      const input = scheduled.get(String(a.scheduledEventId));
      const out = decode<StageOutput>(a.result);
      if (input && out) done.set(input.shard, out);
    }
  }
  /** Counts of a shard and everything downstream of it, or null if any part is missing. */
  const subtree = (shard: string): StageCounts | null => {
    const out = done.get(shard);
    if (!out) return null;
    const counts: StageCounts = {};
    addCounts(counts, out.counts);
    for (const [toStage] of sentBatches(out)) {
      const child = subtree(`${shard}.${toStage}`);
      if (!child) return null;
      addCounts(counts, child);
    }
    return counts;
  };
  const completed: Record<string, Record<number, StageCounts>> = {};
  for (const input of scheduled.values()) {
    if (!input.split) continue;
    const counts = subtree(input.shard);
    if (counts) (completed[input.split.stage] ??= {})[input.split.index] = counts;
  }
  return completed;
}

/** A job's start input and task queue, from its run's first history event. */
export function startOf(events: HistoryEvent[], workflowId: string): { input: JobInput; taskQueue: string } {
  const started = events[0]?.workflowExecutionStartedEventAttributes;
  const input = decode<JobInput>(started?.input);
  const taskQueue = started?.taskQueue?.name;
  if (!input || !taskQueue) throw new UsageError(`cannot read the start input of ${workflowId}: is it a Sage job?`);
  return { input, taskQueue };
}

/** Starts a new run of `workflowId` that skips what the latest run completed; returns the new run id. */
export async function rerunJob(client: Client, workflowId: string): Promise<{ runId: string; reused: number; fromRunId: string }> {
  const handle = client.workflow.getHandle(workflowId);
  const desc = await handle.describe();
  const status = desc.status.name;
  if (!["FAILED", "TERMINATED", "TIMED_OUT"].includes(status)) {
    throw new UsageError(
      `job ${workflowId} is ${status}; only FAILED, TERMINATED or TIMED_OUT jobs can be re-run (a cancelled job's staged output was removed)`,
    );
  }
  const history = await handle.fetchHistory();
  const events = await withDecodedPayloads(history.events ?? [], client.options.loadedDataConverter.payloadCodecs);
  const { input: started, taskQueue } = startOf(events, workflowId);
  // What upstream splits wrote for keyed stages is collected per run, not read back from history:
  // a job with keyed stages runs again whole (its staged files are rewritten with the same content).
  const keyed = started.plan.stages.some((s) => s.keyed);
  const input: JobInput = keyed ? { jobId: started.jobId, plan: started.plan, params: started.params, runtime: started.runtime } : started;
  const completed = keyed ? {} : completedSplits(events);
  for (const [stage, splits] of Object.entries(input.resume?.completed ?? {})) {
    for (const [index, counts] of Object.entries(splits)) (completed[stage] ??= {})[Number(index)] ??= counts;
  }
  // Splits that runs before a continue-as-new completed travel as ranges with summed counts: keep them.
  const ranges = Object.values(input.resume?.done ?? {}).flat();
  const reused = Object.values(completed).reduce((n, s) => n + Object.keys(s).length, 0) + ranges.reduce((n, [from, to]) => n + to - from + 1, 0);
  const next: JobInput = { ...input, resume: { ...input.resume, fromRunId: desc.runId, completed } };
  const started2 = await client.workflow.start(PIPELINE_WORKFLOW, {
    workflowId,
    taskQueue,
    args: [next],
    memo: desc.memo ?? {},
    ...(desc.typedSearchAttributes ? { typedSearchAttributes: desc.typedSearchAttributes } : {}),
  });
  return { runId: started2.firstExecutionRunId, reused, fromRunId: desc.runId };
}
