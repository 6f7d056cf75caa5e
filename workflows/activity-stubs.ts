/**
 * How the workflows call their activities: one set of timeouts and cancellation for every job, a
 * retry policy per kind of job, and typed stubs of the activities in the contract.
 */
import {
  ActivityCancellationType,
  proxyActivities,
  proxyLocalActivities,
  type ActivityOptions,
  type LocalActivityOptions,
  type RetryPolicy,
} from "@temporalio/workflow";
import { stageActivityType, type JobRuntimeOptions } from "../core/plan/job.js";
import type { Stage } from "../core/plan/physical.js";
import type { ControlActivities, StageActivity } from "./contract.js";

/** A bounded job gives up on an activity after 20 attempts: its failure then fails the job. */
export const BOUNDED_RETRY: RetryPolicy = { initialInterval: "1s", backoffCoefficient: 2, maximumInterval: "30s", maximumAttempts: 20 };

/** A streaming job outlives broker and worker outages: it retries until the cause is gone (job-fatal errors are non-retryable). */
export const STREAMING_RETRY: RetryPolicy = { initialInterval: "500ms", backoffCoefficient: 2, maximumInterval: "10s" };

/** Options of the activities of a job: its timeouts from configuration and `retry`. */
export function activityOptions(runtime: JobRuntimeOptions, retry: RetryPolicy): ActivityOptions {
  return {
    startToCloseTimeout: runtime.activityTimeoutMs,
    heartbeatTimeout: runtime.heartbeatTimeoutMs,
    // On cancellation an activity's promise settles only once the activity has stopped (a cancelled job aborts after that).
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    retry,
  };
}

/**
 * The same for local activities: they run inside the workflow task that scheduled them, so they
 * have no heartbeat (the workflow task timeout covers a dead worker).
 */
export function localActivityOptions(runtime: JobRuntimeOptions, retry: RetryPolicy): LocalActivityOptions {
  return { startToCloseTimeout: runtime.activityTimeoutMs, retry, cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED };
}

/** The control activities of a bounded job. */
export function controlActivities(options: ActivityOptions): ControlActivities {
  return proxyActivities<ControlActivities>({ ...options, summary: "sage control" });
}

/** How a stage runs: as an activity, or (given `local`) as a local activity. */
export type StageActivityOptions = { activity: ActivityOptions } | { local: LocalActivityOptions };

/** The activity of one stage; the Web UI shows its operators as the summary. */
export function stageActivity(stage: Stage, options: StageActivityOptions): StageActivity {
  const summary = `${stage.operators.length} fused operator(s): ${stage.name}`;
  const stubs =
    "local" in options
      ? proxyLocalActivities<Record<string, StageActivity>>({ ...options.local, summary })
      : proxyActivities<Record<string, StageActivity>>({ ...options.activity, summary });
  // The stubs answer any type name; the worker registers one per stage name it serves.
  return stubs[stageActivityType(stage.name)]!;
}
