/**
 * Who runs a keyed stage's next unit when stages run as regular activities
 * (`kafka.local-activities: false`), after Temporal's worker-specific task queues: every worker also
 * polls a task queue of its own and says it in the unit's output; the partition workflow sends the
 * stage's next unit to that queue, where the worker holding the state current picks it up. When it
 * does not within a short schedule-to-start timeout (it is gone, or full), the unit goes to the
 * shared queue: any worker runs it, rebuilding the state first. Local activities need none of this:
 * they run where the workflow is cached.
 */
import { ActivityFailure, TimeoutFailure, patched, type ActivityOptions } from "@temporalio/workflow";
import type { StageOutput } from "../core/plan/job.js";
import type { Stage } from "../core/plan/physical.js";
import { keyedOperatorsOf } from "../core/plan/stream.js";
import { stageActivity } from "./activity-stubs.js";
import type { StageActivity } from "./contract.js";

/** Patch id of routing units to their owner's queue (histories recorded before it replay on the shared queue). */
const OWNER_QUEUES = "sage-keyed-owner-queue";

/** How long a unit waits on its owner's queue before it goes to the shared one. */
export const OWNER_WAIT_MS = 5_000;

/** True when `err` is an activity nobody picked up from its queue in time. */
function notPickedUp(err: unknown): boolean {
  return err instanceof ActivityFailure && err.cause instanceof TimeoutFailure && err.cause.timeoutType === "SCHEDULE_TO_START";
}

/** The owner queue of each keyed stage of one partition workflow, and the calls that use them. */
export class KeyGroupOwners {
  constructor(
    /** By stage id; the workflow's state, carried through continue-as-new. */
    private readonly owners: Record<string, string>,
    /** The stage activities' options (the shared queue's). */
    private readonly options: ActivityOptions,
  ) {}

  /** Runs a unit of `stage` through `call`: on its owner's queue when known, else (or when the owner does not take it) on `shared`. */
  async run(stage: Stage, shared: StageActivity, call: (activity: StageActivity) => Promise<StageOutput>): Promise<StageOutput> {
    if (keyedOperatorsOf(stage).length === 0) return call(shared);
    const owner = this.owners[stage.id];
    let out: StageOutput;
    if (owner !== undefined && patched(OWNER_QUEUES)) {
      try {
        out = await call(stageActivity(stage, { activity: { ...this.options, taskQueue: owner, scheduleToStartTimeout: OWNER_WAIT_MS } }));
      } catch (err) {
        if (!notPickedUp(err)) throw err;
        // That worker is gone (or full): no stage it held waits for it again.
        for (const [id, queue] of Object.entries(this.owners)) if (queue === owner) delete this.owners[id];
        out = await call(shared);
      }
    } else out = await call(shared);
    if (out.ownerQueue !== undefined) this.owners[stage.id] = out.ownerQueue;
    else delete this.owners[stage.id];
    return out;
  }
}
