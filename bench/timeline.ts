/**
 * Where a job's wall time went, from its workflow history: from start to the first stage activity
 * (workflow task, split listing), the stage activities (first scheduled to last completed, and the
 * mean time an activity waited between being scheduled and a worker starting it), and the commit.
 */
import type proto from "@temporalio/proto";
import { BATCH_SIGNAL, HOLD_SIGNAL } from "../core/plan/stream.js";

type History = proto.temporal.api.history.v1.IHistory;

/** Seconds spent in each phase of one run. */
export interface JobTimeline {
  /** Workflow started -> first stage activity scheduled (includes the split-listing activity). */
  toFirstStage: number;
  /** First stage activity scheduled -> last one completed. */
  stages: number;
  /** Mean seconds from scheduled to started, over stage activities (queueing and dispatch). */
  meanScheduleToStart: number;
  /** Mean seconds from started to completed, over stage activities. */
  meanStageActivity: number;
  /** Commit activity scheduled -> completed. */
  commit: number;
  /** Last event -> first event. */
  total: number;
  /**
   * Per worker identity, the share of the stage phase during which it ran at least one stage
   * activity: 1.0 for every worker means the work was spread so that no worker waited.
   */
  occupancy: Record<string, number>;
}

/** Length of the union of intervals. */
function covered(intervals: Array<[number, number]>): number {
  let total = 0;
  let end = -Infinity;
  for (const [a, b] of [...intervals].sort((x, y) => x[0] - y[0])) {
    if (b <= end) continue;
    total += b - Math.max(a, end);
    end = b;
  }
  return total;
}

function seconds(t: proto.google.protobuf.ITimestamp | null | undefined): number {
  return Number(t?.seconds ?? 0) + (t?.nanos ?? 0) / 1e9;
}

function occupancy(stages: Array<{ started?: number; done?: number; worker?: string }>, span: number): Record<string, number> {
  const byWorker = new Map<string, Array<[number, number]>>();
  for (const a of stages) {
    if (a.started === undefined || a.done === undefined) continue;
    const list = byWorker.get(a.worker ?? "") ?? [];
    list.push([a.started, a.done]);
    byWorker.set(a.worker ?? "", list);
  }
  return Object.fromEntries([...byWorker].map(([w, list]) => [w, span > 0 ? covered(list) / span : 0]));
}

/** One activity of a history: type, when scheduled, started (and by whom) and completed, in seconds. */
interface ActivityTimes {
  type: string;
  at: number;
  started?: number;
  done?: number;
  worker?: string;
  /** A local activity's own completion (the SDK core's `complete_time` in its marker), before its workflow task completed. */
  localDone?: number;
}

/** Marker name of a local activity's result in history (the SDK core's). */
const LOCAL_ACTIVITY_MARKER = "core_local_activity";

/** The activity type and completion time (s) in a local activity marker's `data` detail (JSON written by the SDK core). */
function localActivityOf(marker: proto.temporal.api.history.v1.IMarkerRecordedEventAttributes): { type: string; completed?: number } {
  const data = marker.details?.["data"]?.payloads?.[0]?.data;
  if (!data) return { type: "" };
  try {
    const d = JSON.parse(Buffer.from(data).toString("utf8")) as { activity_type?: string; complete_time?: { seconds?: number; nanos?: number } };
    const t = d.complete_time;
    return { type: String(d.activity_type ?? ""), ...(t?.seconds !== undefined ? { completed: Number(t.seconds) + (t.nanos ?? 0) / 1e9 } : {}) };
  } catch {
    return { type: "" };
  }
}

/**
 * The activities of a history, in the order they were scheduled. A local activity has no events of
 * its own: it ran inside the workflow task whose completion recorded its marker, so it counts as
 * scheduled when that task was, started when a worker picked the task up and done when the task completed.
 */
function activityTimes(history: History): ActivityTimes[] {
  const scheduled = new Map<string, ActivityTimes>();
  const task = { scheduled: 0, started: 0, completed: 0, worker: "" };
  for (const e of history.events ?? []) {
    const at = seconds(e.eventTime);
    if (e.workflowTaskScheduledEventAttributes) task.scheduled = at;
    if (e.workflowTaskStartedEventAttributes) Object.assign(task, { started: at, worker: e.workflowTaskStartedEventAttributes.identity ?? "" });
    if (e.workflowTaskCompletedEventAttributes) task.completed = at;
    const m = e.markerRecordedEventAttributes;
    if (m?.markerName === LOCAL_ACTIVITY_MARKER) {
      const la = localActivityOf(m);
      scheduled.set(String(e.eventId), {
        type: la.type,
        at: task.scheduled,
        started: task.started,
        done: task.completed,
        worker: task.worker,
        ...(la.completed !== undefined ? { localDone: la.completed } : {}),
      });
    }
    const s = e.activityTaskScheduledEventAttributes;
    if (s) scheduled.set(String(e.eventId), { type: s.activityType?.name ?? "", at });
    const st = e.activityTaskStartedEventAttributes;
    if (st) Object.assign(scheduled.get(String(st.scheduledEventId))!, { started: at, worker: st.identity ?? "" });
    const c = e.activityTaskCompletedEventAttributes;
    if (c) scheduled.get(String(c.scheduledEventId))!.done = at;
  }
  return [...scheduled.values()];
}

/** The timeline of one run's history. */
export function jobTimeline(history: History): JobTimeline {
  const events = history.events ?? [];
  const all = activityTimes(history);
  const stages = all.filter((a) => a.type.startsWith("stage:"));
  const commit = all.find((a) => a.type === "sage:commit");
  const start = seconds(events[0]?.eventTime);
  const end = seconds(events[events.length - 1]?.eventTime);
  const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);
  const firstStage = Math.min(...stages.map((a) => a.at));
  const lastStage = Math.max(...stages.map((a) => a.done ?? a.at));
  return {
    toFirstStage: stages.length ? firstStage - start : 0,
    stages: stages.length ? lastStage - firstStage : 0,
    meanScheduleToStart: mean(stages.map((a) => (a.started ?? a.at) - a.at)),
    meanStageActivity: mean(stages.map((a) => (a.done ?? a.at) - (a.started ?? a.at))),
    commit: commit ? (commit.done ?? commit.at) - commit.at : 0,
    total: end - start,
    occupancy: occupancy(stages, lastStage - firstStage),
  };
}

/** Where a streaming batch's time went inside Temporal, in ms (p50 / p99 over the batches of a run). */
export interface StreamTimeline {
  /** Runs of the workflow (continue-as-new). */
  runs: number;
  /** Batch signals (each carries one or more micro-batches). */
  signals: number;
  activities: number;
  /** Signal recorded -> the activity that runs the batch is scheduled (waiting for the running one, workflow task; local: its workflow task scheduled). */
  signalToScheduled: [number, number];
  /** Activity scheduled -> started by a worker (dispatch; local: of its workflow task). */
  scheduledToStarted: [number, number];
  /** Activity started -> completed (decode, chain, Kafka transaction; local: its whole workflow task). */
  activity: [number, number];
  /** Signal recorded -> activity completed. */
  signalToDone: [number, number];
  /** A local activity's own completion -> its workflow task completed (the activation and the task's completion after the activity). */
  localDoneToTaskDone: [number, number];
  /** Oldest record of the batch produced -> batch cut by the shim (fetch wait, waiting for the partition's previous batch). */
  producedToCut: [number, number];
  /** Batch cut -> signal recorded (encoding, signal-with-start). */
  cutToSignal: [number, number];
  /** At each continue-as-new (p50 / max ms): the run's last stage activity done -> the next run started. */
  runToRun: [number, number];
  /** The same, up to the next run's first stage activity started (the checkpoint as batches feel it). */
  runToFirstActivity: [number, number];
  /** At each continue-as-new (p50 / max): the hold signal recorded -> the run closed. */
  holdToClose: [number, number];
  /** The run closed -> the next run's first workflow task started (it goes to the normal, not the sticky, queue). */
  closeToFirstTask: [number, number];
  /** The next run's first workflow task, started -> completed. */
  firstTask: [number, number];
}

/** What the bench reads from a batch signal's payloads: when the shim cut it, when its oldest record was produced (ms). */
export type BatchTimes = (payloads: proto.temporal.api.common.v1.IPayload[]) => { cutAt: number; oldest: number } | null;

/** The `p`th percentile (0-100) of ascending `sorted` (NaN when empty). */
export function percentile(sorted: readonly number[], p: number): number {
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** p50 and the `high`th percentile of seconds, in whole ms (100: the max). */
function p50p99(seconds: number[], high = 99): [number, number] {
  const ms = seconds.map((x) => x * 1000).sort((a, b) => a - b);
  return [Math.round(percentile(ms, 50)), Math.round(percentile(ms, high))];
}

/**
 * The per-batch timeline of one partition workflow over its runs (`histories` oldest first): each
 * signal is run by the first stage activity scheduled after it (in a later run for a batch a
 * checkpoint carried over).
 */
export function streamTimeline(histories: History[], times: BatchTimes): StreamTimeline {
  const signals: number[] = [];
  const producedToCut: number[] = [];
  const cutToSignal: number[] = [];
  for (const e of histories.flatMap((h) => h.events ?? [])) {
    const sig = e.workflowExecutionSignaledEventAttributes;
    if (sig?.signalName !== BATCH_SIGNAL) continue;
    const at = seconds(e.eventTime);
    signals.push(at);
    const t = times(sig.input?.payloads ?? []);
    if (t) {
      producedToCut.push((t.cutAt - t.oldest) / 1000);
      cutToSignal.push(at - t.cutAt / 1000);
    }
  }
  const perRun = histories.map((h) => activityTimes(h).filter((a) => a.type.startsWith("stage:")));
  const acts = perRun.flat();
  const runToRun: number[] = [];
  const runToFirstActivity: number[] = [];
  const holdToClose: number[] = [];
  const closeToFirstTask: number[] = [];
  const firstTask: number[] = [];
  for (let i = 1; i < histories.length; i++) {
    const old = histories[i - 1]!.events ?? [];
    const closedAt = seconds(old[old.length - 1]?.eventTime);
    const hold = old.filter((e) => e.workflowExecutionSignaledEventAttributes?.signalName === HOLD_SIGNAL).pop();
    if (hold) holdToClose.push(closedAt - seconds(hold.eventTime));
    const events = histories[i]!.events ?? [];
    const started = events.find((e) => e.workflowTaskStartedEventAttributes);
    const completed = events.find((e) => e.workflowTaskCompletedEventAttributes);
    if (started) closeToFirstTask.push(seconds(started.eventTime) - closedAt);
    if (started && completed) firstTask.push(seconds(completed.eventTime) - seconds(started.eventTime));
    const lastDone = Math.max(...perRun[i - 1]!.map((a) => a.done ?? a.at));
    const firstStarted = Math.min(...perRun[i]!.map((a) => a.started ?? Infinity));
    if (!Number.isFinite(lastDone)) continue;
    runToRun.push(seconds(events[0]?.eventTime) - lastDone);
    if (Number.isFinite(firstStarted)) runToFirstActivity.push(firstStarted - lastDone);
  }
  const done = acts.filter((a): a is ActivityTimes & { started: number; done: number } => a.started !== undefined && a.done !== undefined);
  const waits: number[] = [];
  const totals: number[] = [];
  for (const t of signals) {
    const a = done.find((x) => x.at >= t);
    if (!a) continue;
    waits.push(a.at - t);
    totals.push(a.done - t);
  }
  return {
    runs: histories.length,
    signals: signals.length,
    activities: acts.length,
    signalToScheduled: p50p99(waits),
    scheduledToStarted: p50p99(done.map((a) => a.started - a.at)),
    activity: p50p99(done.map((a) => a.done - a.started)),
    signalToDone: p50p99(totals),
    localDoneToTaskDone: p50p99(done.flatMap((a) => (a.localDone === undefined ? [] : [a.done - a.localDone]))),
    producedToCut: p50p99(producedToCut),
    cutToSignal: p50p99(cutToSignal),
    runToRun: p50p99(runToRun, 100),
    runToFirstActivity: p50p99(runToFirstActivity, 100),
    holdToClose: p50p99(holdToClose, 100),
    closeToFirstTask: p50p99(closeToFirstTask, 100),
    firstTask: p50p99(firstTask, 100),
  };
}
