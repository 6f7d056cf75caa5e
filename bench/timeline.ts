/**
 * Where a job's wall time went, from its workflow history: from start to the first stage activity
 * (workflow task, split listing), the stage activities (first scheduled to last completed, and the
 * mean time an activity waited between being scheduled and a worker starting it), and the commit.
 */
import type proto from "@temporalio/proto";

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

/** The timeline of one run's history. */
export function jobTimeline(history: History): JobTimeline {
  const events = history.events ?? [];
  const scheduled = new Map<string, { type: string; at: number; started?: number; done?: number; worker?: string }>();
  for (const e of events) {
    const at = seconds(e.eventTime);
    const s = e.activityTaskScheduledEventAttributes;
    if (s) scheduled.set(String(e.eventId), { type: s.activityType?.name ?? "", at });
    const st = e.activityTaskStartedEventAttributes;
    if (st) Object.assign(scheduled.get(String(st.scheduledEventId))!, { started: at, worker: st.identity ?? "" });
    const c = e.activityTaskCompletedEventAttributes;
    if (c) scheduled.get(String(c.scheduledEventId))!.done = at;
  }
  const all = [...scheduled.values()];
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
