/**
 * One sender per partition workflow: it queues the micro-batches cut for the workflow and delivers
 * them in order by signal-with-start, what queued meanwhile in one signal. The fetch loop never
 * waits for it, so a slow or held workflow does not delay the other workflows' partitions.
 * Backpressure: the sender waits while its workflow has `maxUnacked` batches unprocessed; its queue
 * then fills, and the partitions feeding it are paused until it is empty, so memory stays flat.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { WorkflowExecutionAlreadyStartedError } from "@temporalio/client";
import type { Logger } from "pino";
import { STREAM_WORKFLOW, type BatchDescription, type StreamProgress } from "../../core/plan/stream.js";
import { batchSignal } from "../../workflows/contract.js";
import { shimMetrics } from "../../monitoring/shim-metrics.js";
import type { StreamJob } from "../stream-job.js";
import type { Outgoing } from "./batching.js";
import { CheckpointHold } from "./checkpoint-hold.js";
import type { ShimOptions, ShimStats } from "./options.js";
import type { ServerCalls } from "./server-calls.js";

/** Most encoded record bytes in one batch signal: half the server's default payload limit (2 MB). */
const SIGNAL_BYTES = 1024 * 1024;
/** Longest wait for one signal before it counts as failed and is sent again (the workflow skips what it already holds). */
const SIGNAL_DEADLINE_MS = 30_000;

/** What a sender needs from its shim. */
export interface SenderHost {
  readonly job: StreamJob;
  readonly options: ShimOptions;
  readonly stats: ShimStats;
  readonly logger: Logger;
  readonly taskQueue: string;
  /** The shim's calls to the server (deadlines, connection renewal). */
  readonly calls: ServerCalls;
  /** True once the shim stops: nothing more is sent. */
  stopping(): boolean;
  /** Brings the sender's pending estimate up to date (the workflow's progress query). */
  refresh(sender: WorkflowSender): Promise<void>;
  /** Batches whose signal returned: the workflow holds them durably. */
  delivered(batches: Outgoing[]): void;
  /** A partition workflow has ended: the job is stopping. */
  workflowEnded(): void;
}

/** Delivers the micro-batches of one partition workflow. */
export class WorkflowSender {
  /** Pending batches at the last query plus batches sent since. */
  pending = 0;
  /** Batches delivered so far. */
  sent = 0;
  /** Set once the workflow stops or has ended: nothing more is sent to it. */
  closing = false;
  started = false;
  /** The workflow's answer to the last progress query. */
  progress: StreamProgress | null = null;
  readonly workflowId: string;
  readonly hold: CheckpointHold;
  /** Micro-batches cut and resolved, not yet signalled: per partition in offset order. */
  private queue: Outgoing[] = [];
  private queuedBytes = 0;
  /** Most bytes queued before the partitions feeding the queue are paused. */
  private readonly queueBytes: number;
  /** The drain working the queue down, while it runs. */
  private sending: Promise<void> | null = null;
  /** A signal is under way (a checkpoint hold waits for it). */
  private signalling = false;
  /** Resumes of the partitions paused because the queue was full. */
  private paused: Array<() => void> = [];
  /** The batches of the signal under way. */
  private inFlight: Outgoing[] = [];

  constructor(
    private readonly host: SenderHost,
    readonly index: number,
  ) {
    this.workflowId = host.job.workflowIds[index]!;
    this.queueBytes = Math.max(host.options.fetchBytes, host.options.maxBatchBytes);
    this.hold = new CheckpointHold(host.job, index, () => this.signalling, host.stats, host.logger);
  }

  /** False once the shim stops or the workflow closes. */
  live(): boolean {
    return !this.host.stopping() && !this.closing;
  }

  /** The queue holds `queueBytes` or more: a partition feeding it pauses instead of queueing (at most one fetch more each). */
  full(): boolean {
    return this.queuedBytes >= this.queueBytes;
  }

  /** Pauses a partition until the queue is empty and the workflow no longer waits for the LLM budget (`resume` is called then). */
  pauseFetch(resume: () => void): void {
    this.paused.push(resume);
  }

  /** The workflow's last progress says its batch waits for the LLM budget, until a time still to come: its partitions are not fetched. */
  budgetPaused(now = Date.now()): boolean {
    const pause = this.progress?.llmBudgetPause;
    return pause !== undefined && Date.parse(pause.until) > now;
  }

  /** Resumes the paused partitions once the queue is empty and no budget pause holds them (after a progress query, or a delivery). */
  resumeFetch(): void {
    if (this.paused.length > 0 && this.queue.length === 0 && !this.budgetPaused()) for (const resume of this.paused.splice(0)) resume();
  }

  /** Forgets the pauses: they belong to the consumer that made them, and a new one fetches every partition afresh. */
  forgetPauses(): void {
    this.paused = [];
  }

  /** True while a batch of a topic `of` accepts is queued or being signalled. */
  holdsBatchesOf(of: (topic: string) => boolean): boolean {
    return this.queue.some((b) => of(b.meta.topic)) || this.inFlight.some((b) => of(b.meta.topic));
  }

  /** Queues micro-batches (see `send`). */
  enqueue(batches: Outgoing[]): void {
    for (const b of batches) {
      this.queue.push(b);
      this.queuedBytes += b.meta.bytes;
    }
  }

  /** Starts the drain unless it runs. */
  send(): void {
    if (this.sending || this.queue.length === 0 || !this.live()) return;
    this.sending = this.drain()
      .catch((err: unknown) => this.host.logger.error({ err: (err as Error).message, workflow: this.index }, "shim sender failed"))
      .finally(() => {
        this.sending = null;
        // Batches queued after the drain's last look.
        this.send();
      });
  }

  /** Settles once no drain runs. */
  async settled(): Promise<void> {
    await this.sending;
  }

  /**
   * Signals the queue in order, waiting for room and checkpoint holds; what queued meanwhile goes in
   * one signal (up to the workflow's room and `SIGNAL_BYTES` encoded). Resumes paused partitions
   * once the queue is empty.
   */
  private async drain(): Promise<void> {
    while (this.queue.length > 0) {
      if (!(await this.waitForRoom())) break;
      const room = Math.max(1, this.host.options.maxUnacked - this.pending);
      let n = 0;
      let encoded = 0;
      while (n < this.queue.length && n < room && (n === 0 || encoded + this.queue[n]!.records.byteLength <= SIGNAL_BYTES))
        encoded += this.queue[n++]!.records.byteLength;
      const take = this.queue.slice(0, n);
      const t0 = Date.now();
      this.signalling = true;
      this.inFlight = take;
      let delivered: boolean;
      try {
        delivered = await this.deliver(take);
      } finally {
        this.signalling = false;
        this.inFlight = [];
      }
      if (!delivered) break;
      this.queue.splice(0, n);
      for (const { meta } of take) this.queuedBytes -= meta.bytes;
      this.host.delivered(take);
      // Resumed only once the queue is empty: resuming at the first free byte would refetch whole fetches to keep one batch of each.
      this.resumeFetch();
      // Where a signal's time in the shim went: age of its oldest record when sent, then the signal itself.
      this.host.logger.debug(
        {
          workflow: this.index,
          batches: take.length,
          records: take.reduce((k, b) => k + b.meta.count, 0),
          encodedBytes: encoded,
          ageMs: t0 - Math.min(...take.map((b) => b.firstAt)),
          signalMs: Date.now() - t0,
          queued: this.queue.length,
        },
        "batches delivered",
      );
    }
    if (!this.live()) {
      // The job is stopping: what is queued is not delivered (its offsets were never committed).
      this.queue = [];
      this.queuedBytes = 0;
    }
  }

  /** Waits until the workflow has room for one more batch and no checkpoint hold is on; false when nothing more may be sent. */
  private async waitForRoom(): Promise<boolean> {
    let waited = false;
    for (;;) {
      if (!this.live()) return false;
      const held = this.hold.active;
      if (held) {
        await Promise.race([held, sleep(1_000)]);
      } else if (this.started && this.pending >= this.host.options.maxUnacked) {
        if (!waited) {
          this.host.stats.backpressureWaits++;
          shimMetrics.waited({ pipeline: this.host.job.pipeline.name, jobId: this.host.job.jobId });
        }
        waited = true;
        await sleep(Math.max(20, Math.min(200, this.host.options.bufferTimeoutMs)));
        await this.host.refresh(this);
      } else {
        return true;
      }
    }
  }

  /** Signals the batches in one signal (starting the workflow if needed), retrying while the server is unreachable. */
  private async deliver(batches: Outgoing[]): Promise<boolean> {
    const { job, stats, logger } = this.host;
    const cutAt = Date.now();
    const metas: BatchDescription[] = batches.map(({ meta }) => ({ ...meta, cutAt }));
    const records = batches.map((b) => b.records);
    const input = job.inputs[this.index]!;
    for (let attempt = 1; ; attempt++) {
      if (!this.live()) return false;
      try {
        await this.host.calls.run(SIGNAL_DEADLINE_MS, (temporal) =>
          temporal.workflow.signalWithStart(STREAM_WORKFLOW, {
            workflowId: this.workflowId,
            taskQueue: this.host.taskQueue,
            args: [input],
            signal: batchSignal,
            signalArgs: [metas, ...records],
            // A stopped or failed partition workflow is never silently replaced by a fresh one with an empty offset table.
            workflowIdReusePolicy: "REJECT_DUPLICATE",
            ...job.client.startDecorations(
              job.pipeline.name,
              job.jobId,
              input.plan,
              input.params,
              `sage streaming job ${job.jobId} of ${job.pipeline.name}, partition workflow ${this.index + 1}/${job.inputs.length}`,
            ),
          }),
        );
        this.started = true;
        this.pending += batches.length;
        this.sent += batches.length;
        stats.signals++;
        for (const b of batches) {
          stats.batches++;
          stats.records += b.meta.count;
          stats.bytes += b.meta.bytes;
          shimMetrics.delivered({ pipeline: job.pipeline.name, jobId: job.jobId }, b.meta.topic, b.meta.count, b.meta.bytes, (Date.now() - cutAt) / 1000);
        }
        return true;
      } catch (err) {
        if (err instanceof WorkflowExecutionAlreadyStartedError) {
          this.closing = true;
          logger.warn({ workflowId: this.workflowId }, "partition workflow has ended; no more batches go to it");
          this.host.workflowEnded();
          return false;
        }
        stats.signalRetries++;
        logger.warn({ err: (err as Error).message, attempt, workflowId: this.workflowId }, "signal failed; retrying");
        await sleep(Math.min(5_000, 100 * 2 ** Math.min(attempt, 6)));
      }
    }
  }
}
