/**
 * The checkpoint hold: when a run reports `checkpoint` (it used its event or byte budget), the
 * sender of its workflow holds its batches, tells the run so (hold signal) and lets them go once
 * the run has continued as new, so no batch races the run's close.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { WorkflowContinuedAsNewError } from "@temporalio/client";
import type { Logger } from "pino";
import type { StreamProgress } from "../../core/plan/stream.js";
import { holdSignal } from "../../workflows/contract.js";
import type { StreamJob } from "../stream-job.js";
import type { ShimStats } from "./options.js";
import { shimMetrics } from "../../monitoring/shim-metrics.js";

/** Longest hold for a checkpoint; after it batches flow again (the run then closes on its own, racing them). */
const HOLD_MAX_MS = 5_000;

/** The checkpoint holds of one partition workflow: at most one at a time, one per run. */
export class CheckpointHold {
  /** While batches are held for a run's checkpoint: settles when the hold ends. */
  private held: Promise<void> | null = null;
  /** The run the last hold was for. */
  private heldRun: string | null = null;

  constructor(
    private readonly job: StreamJob,
    private readonly index: number,
    /** True while a batch signal is under way (the hold waits for it). */
    private readonly signalling: () => boolean,
    private readonly stats: ShimStats,
    private readonly logger: Logger,
  ) {}

  /** While a hold is on: settles when it ends. */
  get active(): Promise<void> | null {
    return this.held;
  }

  /** Starts a hold when the progress says its run wants to checkpoint and that run was not held yet. */
  onProgress(p: StreamProgress): void {
    if (p.checkpoint && p.runId && p.phase === "running" && this.heldRun !== p.runId && !this.held) void this.hold(p.runId);
  }

  /**
   * Holds the workflow's batches while run `runId` checkpoints: waits for the signal under way, tells
   * the run (hold signal), and lets batches go again once the run has closed (or after `HOLD_MAX_MS`).
   */
  private async hold(runId: string): Promise<void> {
    this.heldRun = runId;
    let release!: () => void;
    this.held = new Promise((r) => (release = r));
    const started = Date.now();
    const deadline = started + HOLD_MAX_MS;
    try {
      while (this.signalling() && Date.now() < deadline) await sleep(2);
      const temporal = this.job.client.temporal;
      await this.job.handle(this.index).signal(holdSignal, runId);
      // The run's result long-polls its close: it ends (continued as new, or stopped) as soon as the run does.
      const closed = await temporal.connection
        .withDeadline(deadline, () => temporal.workflow.getHandle(this.job.workflowIds[this.index]!, runId, { followRuns: false }).result())
        .then(
          () => true,
          (err: unknown) => (err instanceof WorkflowContinuedAsNewError ? true : Date.now() < deadline),
        );
      if (closed) this.stats.holds++;
      else shimMetrics.checkpointFailed({ pipeline: this.job.pipeline.name, jobId: this.job.jobId });
      this.logger.debug({ workflow: this.index, runId, ms: Date.now() - started, closed }, "checkpoint hold over");
    } catch (err) {
      shimMetrics.checkpointFailed({ pipeline: this.job.pipeline.name, jobId: this.job.jobId });
      this.logger.debug({ err: (err as Error).message, workflow: this.index, runId }, "checkpoint hold failed; batches flow again");
    } finally {
      this.held = null;
      release();
    }
  }
}
