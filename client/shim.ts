/**
 * The streaming shim: consumes the job's Kafka topics, cuts micro-batches (records, bytes, and the
 * buffer timeout as the fetch wait), and delivers each batch to the partition workflow that owns
 * its partition by signal-with-start. Consumer offsets are committed only after the signal call
 * returned (the workflow then holds the batch durably); the workflow's offset table is the truth.
 * Backpressure: at most `maxUnacked` batches wait unprocessed per workflow; beyond that the
 * partition's handler waits (heartbeating the group), so nothing more is fetched and memory stays flat.
 * Checkpoints: when a run reports `checkpoint` (it used its event budget), the shim holds that
 * workflow's batches, tells the run so (hold signal) and resumes once the run has continued as new,
 * so no batch races the run's close.
 */
import { WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError } from "@temporalio/client";
import type { Logger } from "pino";
import type { KafkaSourceSpec } from "../core/api/connectors.js";
import type { SageConfig } from "../core/config/schema.js";
import { PROGRESS_QUERY } from "../core/plan/job.js";
import { BATCH_SIGNAL, HOLD_SIGNAL, STREAM_WORKFLOW, kafkaSourceOf, workflowIndexOf, type StreamBatch, type StreamProgress } from "../core/plan/stream.js";
import { encodeBatch, messageBytes } from "../connectors/kafka/batch-codec.js";
import type { BatchControl, ConsumedMessage, GroupConsumer, KafkaClient, PartitionBatch } from "../connectors/kafka/client.js";
import { totalProgress, type StreamJob, type StreamJobProgress } from "./stream-job.js";
import { taskQueueOf } from "./task-queue.js";
import { shimMetrics } from "../worker/metrics.js";

/** Tuning of the shim (from `kafka.*` and `execution.*` configuration). */
export interface ShimOptions {
  maxBatchRecords: number;
  maxBatchBytes: number;
  bufferTimeoutMs: number;
  maxUnacked: number;
  sessionTimeoutMs: number;
  fetchBytes: number;
}

/** Shim options from configuration. */
export function shimOptionsOf(config: SageConfig): ShimOptions {
  return {
    maxBatchRecords: config.kafka["max-batch-records"],
    maxBatchBytes: config.execution["max-batch-bytes"],
    bufferTimeoutMs: config.execution["buffer-timeout"],
    maxUnacked: config.kafka["max-unacked-batches"],
    sessionTimeoutMs: config.kafka["session-timeout"],
    fetchBytes: config.kafka["fetch-bytes"],
  };
}

/** Counters of a shim, for logs, tests and benchmarks. */
export interface ShimStats {
  batches: number;
  records: number;
  bytes: number;
  /** Times a handler waited because a workflow had `maxUnacked` batches pending. */
  backpressureWaits: number;
  /** Most pending batches seen on any workflow (from its progress query). */
  maxPendingSeen: number;
  signalRetries: number;
  consumerRestarts: number;
  /** Checkpoint holds that ended with the run continued as new. */
  holds: number;
}

/** What the shim knows of one partition workflow. */
interface WorkflowSlot {
  index: number;
  /** Pending batches at the last query plus batches sent since. */
  pending: number;
  sent: number;
  /** Set once the workflow stops or has ended: nothing more is sent to it. */
  closing: boolean;
  started: boolean;
  /** Signals under way (or about to start: reserved by `waitForRoom`). */
  signalling: number;
  /** While batches are held for a run's checkpoint: settles when the hold ends. */
  held: Promise<void> | null;
  /** The run the last hold was for (one hold per run). */
  heldRun: string | null;
  /** The progress query under way: one at a time per workflow (see `refresh`). */
  querying: Promise<void> | null;
  /** The workflow's answer to the last progress query. */
  progress: StreamProgress | null;
}

/** Longest hold for a checkpoint; after it batches flow again (the run then closes on its own, racing them). */
const HOLD_MAX_MS = 5_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Feeds one streaming job from Kafka. */
export class KafkaShim {
  readonly stats: ShimStats = { batches: 0, records: 0, bytes: 0, backpressureWaits: 0, maxPendingSeen: 0, signalRetries: 0, consumerRestarts: 0, holds: 0 };
  private readonly source: KafkaSourceSpec;
  private readonly slots: WorkflowSlot[];
  private consumer: GroupConsumer | null = null;
  private stopping = false;
  private watcher: NodeJS.Timeout | null = null;
  private watching: Promise<void> | null = null;
  private finished!: () => void;
  /** Resolves when the shim has stopped (by `stop()`, or because the job was stopped). */
  readonly done: Promise<void> = new Promise((r) => (this.finished = r));
  private readonly taskQueue: string;

  constructor(
    private readonly job: StreamJob,
    private readonly kafka: KafkaClient,
    private readonly options: ShimOptions,
    private readonly logger: Logger,
  ) {
    const source = kafkaSourceOf(job.inputs[0]!.plan);
    if (!source) throw new Error(`pipeline "${job.pipeline.name}" has no Kafka source: it is a bounded job; submit it instead`);
    this.source = source;
    this.slots = job.inputs.map((_, index) => ({
      index,
      pending: 0,
      sent: 0,
      closing: false,
      started: false,
      signalling: 0,
      held: null,
      heldRun: null,
      querying: null,
      progress: null,
    }));
    this.taskQueue = taskQueueOf(job.pipeline.name, job.client.config);
  }

  /** Joins the consumer group and starts delivering; returns once consuming has begun. */
  async start(): Promise<void> {
    await this.startConsumer();
    this.watcher = setInterval(() => {
      // One round at a time; `stop` waits for the last one, so no call outlives the client.
      this.watching ??= this.watch().finally(() => (this.watching = null));
    }, 1_000);
  }

  private async startConsumer(): Promise<void> {
    const o = this.options;
    const consumer = this.kafka.consumer({
      groupId: this.source.groupId,
      topics: this.source.topics,
      fromBeginning: this.source.startFrom === "earliest",
      maxWaitMs: o.bufferTimeoutMs,
      minBytes: Math.min(o.maxBatchBytes, o.fetchBytes),
      maxBytesPerPartition: o.fetchBytes,
      concurrency: Math.max(1, this.slots.length * 2),
      sessionTimeoutMs: o.sessionTimeoutMs,
    });
    consumer.onCrash((err) => {
      if (this.stopping) return;
      this.logger.error({ err: err.message }, "kafka consumer crashed; starting a new one");
      this.stats.consumerRestarts++;
      void consumer
        .stop()
        .catch(() => undefined)
        .then(() => sleep(1_000))
        .then(() => (this.stopping ? undefined : this.startConsumer()))
        .catch((e: unknown) => this.logger.error({ err: (e as Error).message }, "kafka consumer restart failed"));
    });
    this.consumer = consumer;
    await consumer.start((batch, control) => this.onBatch(consumer, batch, control));
    this.logger.info({ groupId: this.source.groupId, topics: this.source.topics, workflows: this.slots.length }, "shim consuming");
  }

  /** Cuts one fetched partition batch into micro-batches and delivers them in order. */
  private async onBatch(consumer: GroupConsumer, batch: PartitionBatch, control: BatchControl): Promise<void> {
    const slot = this.slots[workflowIndexOf(batch.partition, this.slots.length)]!;
    const { messages } = batch;
    let i = 0;
    while (i < messages.length) {
      let j = i;
      let bytes = 0;
      while (j < messages.length && j - i < this.options.maxBatchRecords) {
        const size = messageBytes(messages[j]!);
        if (j > i && bytes + size > this.options.maxBatchBytes) break;
        bytes += size;
        j++;
      }
      const slice = messages.slice(i, j);
      const t0 = Date.now();
      if (!(await this.waitForRoom(slot, control))) return;
      const t1 = Date.now();
      let delivered: boolean;
      try {
        delivered = await this.deliver(slot, batch, slice, bytes, control);
      } finally {
        slot.signalling--;
      }
      if (!delivered) return;
      const t2 = Date.now();
      const last = slice[slice.length - 1]!.offset;
      control.resolve(last);
      // A hint for restarts only: the workflow already holds the batch and drops what it has seen.
      try {
        await consumer.commit(batch.topic, batch.partition, String(Number(last) + 1));
        // Where a batch's time in the shim went: age of its oldest record when cut, backpressure wait, signal, offset commit.
        this.logger.debug(
          {
            partition: batch.partition,
            records: slice.length,
            lagMs: t0 - Number(slice[0]!.timestamp),
            roomMs: t1 - t0,
            signalMs: t2 - t1,
            commitMs: Date.now() - t2,
          },
          "batch delivered",
        );
      } catch (err) {
        // Usually a rebalance: this member's generation is over. Hand the rest back so the consumer rejoins.
        this.logger.warn(
          { err: (err as Error).message, topic: batch.topic, partition: batch.partition },
          "offset commit refused; leaving the batch to rejoin the group",
        );
        return;
      }
      i = j;
    }
  }

  private live(slot: WorkflowSlot, control: BatchControl): boolean {
    return !this.stopping && !slot.closing && control.active();
  }

  /**
   * Waits (heartbeating) until the workflow has room for one more batch and no checkpoint hold is on;
   * false when the batch must not be sent. True reserves a signal (`slot.signalling`): the caller
   * signals next and releases it.
   */
  private async waitForRoom(slot: WorkflowSlot, control: BatchControl): Promise<boolean> {
    let waited = false;
    for (;;) {
      if (!this.live(slot, control)) return false;
      if (slot.held) {
        await Promise.race([slot.held, sleep(1_000)]);
      } else if (slot.started && slot.pending >= this.options.maxUnacked) {
        if (!waited) {
          this.stats.backpressureWaits++;
          shimMetrics.waited(this.job.pipeline.name);
        }
        waited = true;
        await sleep(Math.max(20, Math.min(200, this.options.bufferTimeoutMs)));
        await this.refresh(slot);
      } else {
        slot.signalling++;
        return true;
      }
      // A heartbeat that fails means a rebalance: give the batch back so the consumer can rejoin.
      if (!(await this.heartbeat(control))) return false;
    }
  }

  /**
   * Holds the workflow's batches while run `runId` checkpoints: waits for signals under way, tells
   * the run (hold signal), and lets batches go again once another run is current (or after `HOLD_MAX_MS`).
   */
  private async hold(slot: WorkflowSlot, runId: string): Promise<void> {
    slot.heldRun = runId;
    let release!: () => void;
    slot.held = new Promise((r) => (release = r));
    const started = Date.now();
    const deadline = started + HOLD_MAX_MS;
    try {
      while (slot.signalling > 0 && Date.now() < deadline) await sleep(5);
      const handle = this.job.handle(slot.index);
      await handle.signal(HOLD_SIGNAL, runId);
      while (Date.now() < deadline && !this.stopping) {
        const current = await handle.describe().then(
          (d) => (d.status.name === "RUNNING" ? d.runId : null),
          () => null,
        );
        if (current !== runId) {
          this.stats.holds++;
          break;
        }
        await sleep(20);
      }
      this.logger.debug({ workflow: slot.index, runId, ms: Date.now() - started }, "checkpoint hold over");
    } catch (err) {
      this.logger.debug({ err: (err as Error).message, workflow: slot.index, runId }, "checkpoint hold failed; batches flow again");
    } finally {
      slot.held = null;
      release();
    }
  }

  /** Signals the batch (starting the workflow if needed), retrying while the server is unreachable. */
  private async deliver(slot: WorkflowSlot, batch: PartitionBatch, slice: ConsumedMessage[], bytes: number, control: BatchControl): Promise<boolean> {
    const meta: Omit<StreamBatch, "records"> = {
      topic: batch.topic,
      partition: batch.partition,
      from: Number(slice[0]!.offset),
      to: Number(slice[slice.length - 1]!.offset),
      count: slice.length,
      bytes,
      cutAt: Date.now(),
    };
    const records = encodeBatch(slice);
    const job = this.job;
    const input = job.inputs[slot.index]!;
    for (let attempt = 1; ; attempt++) {
      if (!this.live(slot, control)) return false;
      try {
        await job.client.temporal.workflow.signalWithStart(STREAM_WORKFLOW, {
          workflowId: job.workflowIds[slot.index]!,
          taskQueue: this.taskQueue,
          args: [input],
          signal: BATCH_SIGNAL,
          signalArgs: [meta, records],
          // A stopped or failed partition workflow is never silently replaced by a fresh one with an empty offset table.
          workflowIdReusePolicy: "REJECT_DUPLICATE",
          ...job.client.startDecorations(
            job.pipeline.name,
            job.jobId,
            input.plan,
            input.params,
            `sage streaming job ${job.jobId} of ${job.pipeline.name}, partition workflow ${slot.index + 1}/${job.inputs.length}`,
          ),
        });
        slot.started = true;
        slot.pending++;
        slot.sent++;
        this.stats.batches++;
        this.stats.records += slice.length;
        this.stats.bytes += bytes;
        shimMetrics.delivered(job.pipeline.name, batch.topic, slice.length, (Date.now() - meta.cutAt) / 1000);
        return true;
      } catch (err) {
        if (err instanceof WorkflowExecutionAlreadyStartedError) {
          slot.closing = true;
          this.logger.warn({ workflowId: job.workflowIds[slot.index] }, "partition workflow has ended; no more batches go to it");
          this.onJobStopping();
          return false;
        }
        this.stats.signalRetries++;
        this.logger.warn({ err: (err as Error).message, attempt, workflowId: job.workflowIds[slot.index] }, "signal failed; retrying");
        await sleep(Math.min(5_000, 100 * 2 ** Math.min(attempt, 6)));
        if (!(await this.heartbeat(control))) return false;
      }
    }
  }

  /** Heartbeats the group; false when this member must give its batch back (rebalance, lost membership). */
  private async heartbeat(control: BatchControl): Promise<boolean> {
    try {
      await control.heartbeat();
      return true;
    } catch (err) {
      this.logger.info({ err: (err as Error).message }, "group heartbeat refused (rebalance): leaving the batch");
      return false;
    }
  }

  /**
   * Queries one workflow's pending batches and phase; a caller that comes while a query is under way
   * waits for that one. The server buffers one query per workflow while a workflow task runs (its
   * default `history.MaxBufferedQueryCount` is 1), and with local activities one nearly always
   * runs: a second query at once is refused (RESOURCE_EXHAUSTED) and the client retries it with
   * backoff. Measured: such queries took 1.4-2.1 s, the pending estimate reached
   * `max-unacked-batches` meanwhile and every partition of the shim stalled for 2 s.
   */
  private refresh(slot: WorkflowSlot): Promise<void> {
    return (slot.querying ??= this.query(slot).finally(() => (slot.querying = null)));
  }

  private async query(slot: WorkflowSlot): Promise<void> {
    const sentBefore = slot.sent;
    const asked = Date.now();
    let p: StreamProgress;
    try {
      p = await this.job.handle(slot.index).query<StreamProgress>(PROGRESS_QUERY);
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return;
      this.logger.debug({ err: (err as Error).message, workflow: slot.index, ms: Date.now() - asked }, "progress query failed");
      return;
    }
    const ms = Date.now() - asked;
    if (ms > 500) this.logger.debug({ workflow: slot.index, ms, runId: p.runId }, "slow progress query");
    slot.progress = p;
    slot.pending = p.pending + (slot.sent - sentBefore);
    if (p.checkpoint && p.runId && p.phase === "running" && slot.heldRun !== p.runId && !slot.held) void this.hold(slot, p.runId);
    shimMetrics.pending(this.job.pipeline.name, this.job.workflowIds[slot.index]!, p.pending);
    this.stats.maxPendingSeen = Math.max(this.stats.maxPendingSeen, p.pending);
    if (p.phase !== "running" && !slot.closing) {
      slot.closing = true;
      this.logger.info({ workflowId: this.job.workflowIds[slot.index], phase: p.phase }, "partition workflow is stopping");
      this.onJobStopping();
    }
  }

  /** Every second: notice stopped workflows (a `sage stop`) and keep the pending estimates fresh. */
  private async watch(): Promise<void> {
    // All workflows at once: a slow answer from one does not leave the others' estimates stale.
    await Promise.all(this.slots.map((slot) => this.watchSlot(slot)));
  }

  private async watchSlot(slot: WorkflowSlot): Promise<void> {
    if (this.stopping) return;
    if (!slot.started && !slot.closing) {
      // A workflow started by another shim (or stopped before this one fed it) is seen here too.
      const status = await this.job
        .handle(slot.index)
        .describe()
        .then((d) => d.status.name)
        .catch(() => null);
      if (status === null) return;
      slot.started = true;
      if (status !== "RUNNING") {
        slot.closing = true;
        this.onJobStopping();
        return;
      }
    }
    if (slot.started && !slot.closing) await this.refresh(slot);
  }

  /**
   * The job's progress from the shim's own last queries (at most a second old while it runs). A
   * report reads this instead of querying again: a query of its own would compete with the shim's.
   */
  progress(): StreamJobProgress {
    return totalProgress(this.slots.map((s) => s.progress));
  }

  /** A stop of any partition workflow stops the job: the shim drains and leaves. */
  private onJobStopping(): void {
    if (this.stopping) return;
    this.logger.info("job is stopping: the shim drains and stops");
    void this.stop();
  }

  /** Stops consuming: batches being delivered finish or are abandoned before their signal; offsets stay at the last delivered batch. */
  async stop(): Promise<void> {
    if (!this.stopping) {
      this.stopping = true;
      if (this.watcher) clearInterval(this.watcher);
      await this.watching?.catch(() => undefined);
      await this.consumer?.stop().catch((err: unknown) => this.logger.warn({ err: (err as Error).message }, "consumer stop failed"));
      this.logger.info({ ...this.stats }, "shim stopped");
      this.finished();
    }
    await this.done;
  }
}
