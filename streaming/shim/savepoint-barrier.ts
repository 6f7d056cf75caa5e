/**
 * A savepoint's barrier in the shim: while any partition workflow reports one, source partitions
 * (and the redrive topic) are paused as their next fetch arrives, while repartition topics keep
 * flowing so keyed stages drain. Once no source batch of this shim is queued or under way, the
 * shim acknowledges the barrier to every workflow it feeds; the savepoint is taken from there. When
 * no workflow reports the barrier any more (released, or the job stopped), the sources resume.
 */
import type { Logger } from "pino";
import { savepointAckSignal } from "../../workflows/contract.js";
import type { StreamJob } from "../stream-job.js";
import type { WorkflowSender } from "./sender.js";

/** The barrier state of one shim. */
export class SavepointBarrierWatch {
  /** The barrier on now, or null. */
  private active: string | null = null;
  /** The barrier this shim acknowledged last. */
  private acked: string | null = null;
  private resumes: Array<() => void> = [];

  constructor(
    private readonly job: StreamJob,
    private readonly senders: readonly WorkflowSender[],
    /** True for topics the barrier stops: the job's sources and its redrive topic. */
    private readonly isSource: (topic: string) => boolean,
    private readonly logger: Logger,
  ) {}

  /** True when a batch of `topic` must not be fetched now: the caller pauses its partition with `pause`. */
  holds(topic: string): boolean {
    return this.active !== null && this.isSource(topic);
  }

  /** Keeps the resume of a partition paused for the barrier. */
  pause(resume: () => void): void {
    this.resumes.push(resume);
  }

  /** Forgets the pauses: they belong to the consumer that made them. */
  forgetPauses(): void {
    this.resumes = [];
  }

  /** After a progress round: follows the workflows' barrier, and acknowledges it once no source batch is in this shim. */
  async update(): Promise<void> {
    const reported = this.senders.map((s) => s.progress?.barrier?.id).find((id) => id !== undefined) ?? null;
    if (reported === null) {
      if (this.active === null) return;
      this.logger.info({ savepoint: this.active }, "savepoint barrier released: source partitions resume");
      this.active = null;
      for (const resume of this.resumes.splice(0)) resume();
      return;
    }
    if (this.active !== reported) {
      this.active = reported;
      this.logger.info({ savepoint: reported }, "savepoint barrier: source partitions pause, repartition topics drain");
    }
    if (this.acked === reported || this.senders.some((s) => s.holdsBatchesOf(this.isSource))) return;
    const started = this.senders.filter((s) => s.started && !s.closing);
    await Promise.all(started.map((s) => this.job.handle(s.index).signal(savepointAckSignal, reported)));
    this.acked = reported;
    this.logger.info({ savepoint: reported, workflows: started.length }, "savepoint barrier acknowledged: no source batch is left in the shim");
  }
}
