/**
 * The pipeline workflow: a deterministic interpreter of a physical plan. It never runs user code;
 * it moves split descriptors and batches between stage activities, counts, and commits the sinks.
 */
import { ActivityFailure, ApplicationFailure, CancellationScope, isCancellation, continueAsNew, setHandler, workflowInfo } from "@temporalio/workflow";
import {
  ABORT_ACTIVITY,
  COMMIT_ACTIVITY,
  SPLITS_ACTIVITY,
  addCounts,
  deadLetterTotal,
  inRanges,
  jobContextOf,
  toRanges,
  type JobInput,
  type JobProgress,
  type JobResult,
  type SplitRef,
} from "../core/plan/job.js";
import { BOUNDED_RETRY, activityOptions, controlActivities } from "./activity-stubs.js";
import { progressQuery } from "./contract.js";
import { StageGraph, type ActivityCaller } from "./stage-graph.js";
import { KeyedBarrier } from "./keyed-barrier.js";

/** Runs one bounded job to completion. */
export async function pipelineWorkflow(input: JobInput): Promise<JobResult> {
  const { plan, runtime } = input;
  const startedAt = new Date().toISOString();
  const progress: JobProgress = {
    pipeline: plan.pipeline,
    jobId: input.jobId,
    planHash: plan.hash,
    phase: "planning",
    splitsTotal: 0,
    splitsDone: 0,
    activities: 0,
    counts: {},
    deadLetters: 0,
  };
  setHandler(progressQuery, () => progress);

  const options = activityOptions(runtime, BOUNDED_RETRY);
  const control = controlActivities(options);
  const context = jobContextOf(input);

  /** Set when history grows large: no new splits start; in-flight ones finish; the job continues as new. */
  let draining = false;
  const doneSplits = new Map<string, number[]>();
  const markDone = (stage: string, index: number): void => {
    const list = doneSplits.get(stage);
    if (list) list.push(index);
    else doneSplits.set(stage, [index]);
  };

  /** Activities scheduled and not yet settled: a cancelled job waits for them before it removes its staging. */
  const inflight = new Set<Promise<unknown>>();
  const call: ActivityCaller = async (activity, ...args) => {
    progress.activities++;
    const running = activity(...args);
    inflight.add(running);
    try {
      return await running;
    } finally {
      inflight.delete(running);
    }
  };

  const barrier = new KeyedBarrier(input.resume?.keyed);
  const graph = new StageGraph({
    plan,
    context,
    totals: progress,
    call,
    stages: { activity: options },
    sourcePrefetch: runtime.splitPrefetch,
    budgetPauses: true,
    onKeyed: (edge, shard, output) => barrier.add(edge, shard, output),
  });

  try {
    const splits = await call(control[SPLITS_ACTIVITY], context);
    const todo: SplitRef[] = [];
    const resume = input.resume;
    if (resume?.counts) addCounts(progress.counts, resume.counts);
    progress.activities += resume?.activities ?? 0;
    for (const [stageId, refs] of Object.entries(splits)) {
      for (const ref of refs) {
        const done = resume?.completed[stageId]?.[ref.index];
        if (done) addCounts(progress.counts, done);
        if (done || inRanges(resume?.done?.[stageId], ref.index)) markDone(stageId, ref.index);
        else todo.push(ref);
      }
    }
    progress.splitsTotal = Object.values(splits).reduce((n, refs) => n + refs.length, 0);
    progress.splitsDone = progress.splitsTotal - todo.length;
    progress.deadLetters = deadLetterTotal(progress.counts);
    progress.phase = "running";

    await Promise.all(
      todo.map(async (ref) => {
        const unit = { shard: `${ref.stage}-${String(ref.index).padStart(6, "0")}`, split: ref };
        if (await graph.run(graph.stage(ref.stage), unit, () => !(draining ||= workflowInfo().continueAsNewSuggested))) {
          progress.splitsDone++;
          markDone(ref.stage, ref.index);
        }
      }),
    );
    if (draining) {
      // Checkpoint: a new run skips the splits done so far and carries their counts (history stays bounded).
      const done = Object.fromEntries([...doneSplits].map(([stage, indices]) => [stage, toRanges(indices)]));
      await continueAsNew<typeof pipelineWorkflow>({
        ...input,
        resume: { fromRunId: workflowInfo().runId, completed: {}, done, counts: progress.counts, activities: progress.activities, keyed: barrier.inputs },
      });
    }
    // Keyed stages, in plan (topological) order: each once all of its input is in; what they emit on runs at once.
    for (const stage of plan.stages.filter((s) => s.keyed)) {
      await Promise.all(barrier.units(stage.id, stage.parallelism).map((keyed) => graph.run(stage, { shard: `${stage.id}@${keyed.instance}`, keyed })));
    }

    progress.phase = "committing";
    // Once publishing starts it finishes: a cancel that arrives now is too late (nothing half-published).
    const committed = await CancellationScope.nonCancellable(() => call(control[COMMIT_ACTIVITY], { ...context, deadLetters: progress.deadLetters }));
    progress.phase = "done";
    return { ...progress, ...committed, startedAt, finishedAt: new Date().toISOString() };
  } catch (err) {
    if (isCancellation(err)) {
      progress.phase = "cancelled";
      await CancellationScope.nonCancellable(async () => {
        // A stage still running would stage its shard after the abort removed the folder.
        await Promise.allSettled([...inflight]);
        await call(control[ABORT_ACTIVITY], context);
      });
      throw err;
    }
    progress.phase = "failed";
    throw explain(err);
  }
}

/** Turns an activity failure into a job failure whose message names the stage and the cause. */
function explain(err: unknown): unknown {
  if (err instanceof ActivityFailure && err.cause instanceof ApplicationFailure) {
    const cause = err.cause;
    return ApplicationFailure.create({
      message: `${err.activityType ?? "activity"} failed: ${cause.message}`,
      type: cause.type ?? "StageFailed",
      nonRetryable: true,
      cause: err,
    });
  }
  return err;
}
