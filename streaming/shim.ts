/**
 * The streaming shim: consumes the job's Kafka topics, cuts micro-batches (records, bytes, and the
 * buffer timeout as the fetch wait) and queues them for the partition workflow that owns their
 * partition. One sender per workflow delivers its queue in order by signal-with-start, what queued
 * meanwhile in one signal; the fetch loop never waits for a signal, so a slow or held workflow does
 * not delay the others' partitions.
 * Consumer offsets are committed (every `COMMIT_EVERY_MS`) only for batches whose signal returned
 * (the workflow then holds the batch durably); the workflow's offset table is the truth.
 * Backpressure: a sender waits while its workflow has `maxUnacked` batches unprocessed; its queue
 * then fills to `QUEUE_BYTES` and the partitions feeding it are paused, so nothing more is fetched
 * for them and memory stays flat.
 * Checkpoints: when a run reports `checkpoint` (it used its event budget), the shim holds that
 * workflow's batches, tells the run so (hold signal) and resumes once the run has continued as new,
 * so no batch races the run's close.
 */
import { WorkflowContinuedAsNewError, WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError } from "@temporalio/client";
import type { Logger } from "pino";
import type { KafkaSourceSpec } from "../core/api/connectors.js";
import type { SageConfig } from "../core/config/schema.js";
import { PROGRESS_QUERY } from "../core/plan/job.js";
import { BATCH_SIGNAL, HOLD_SIGNAL, STREAM_WORKFLOW, kafkaSourceOf, workflowIndexOf, type StreamBatch, type StreamProgress } from "../core/plan/stream.js";
import { encodeBatch, messageBytes } from "../connectors/kafka/batch-codec.js";
import type { BatchControl, GroupConsumer, KafkaClient, PartitionBatch } from "../connectors/kafka/client.js";
import { totalProgress, type StreamJob, type StreamJobProgress } from "./stream-job.js";
import { taskQueueOf } from "../client/task-queue.js";
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
  /** Batch signals sent (each carries the batches queued for its workflow since the last). */
  signals: number;
  batches: number;
  records: number;
  bytes: number;
  /** Times a sender waited because a workflow had `maxUnacked` batches pending. */
  backpressureWaits: number;
  /** Times a partition was paused because its workflow's queue was full. */
  fetchPauses: number;
  /** Most pending batches seen on any workflow (from its progress query). */
  maxPendingSeen: number;
  signalRetries: number;
  consumerRestarts: number;
  /** Checkpoint holds that ended with the run continued as new. */
  holds: number;
}

/** A micro-batch cut from a fetch, encoded, waiting for its signal. */
interface Outgoing {
  meta: Omit<StreamBatch, "records" | "cutAt">;
  /** The records, gzip'd (`encodeBatch`). */
  records: Uint8Array;
  /** Produce time of its first record (ms). */
  firstAt: number;
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
  /** Micro-batches cut and resolved, not yet signalled: per partition in offset order. */
  queue: Outgoing[];
  queuedBytes: number;
  /** The sender working the queue down, while it runs. */
  sending: Promise<void> | null;
  /** A signal is under way (a checkpoint hold waits for it). */
  signalling: boolean;
  /** Resumes of the partitions paused because the queue was full. */
  paused: Array<() => void>;
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

/**
 * How often delivered offsets are committed. They are only a hint for restarts (the workflow drops
 * what it has seen), so they need not cost a broker write per batch.
 */
const COMMIT_EVERY_MS = 1_000;

/** Most encoded record bytes in one batch signal: half the server's default payload limit (2 MB). */
const SIGNAL_BYTES = 1024 * 1024;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Feeds one streaming job from Kafka. */
export class KafkaShim {
  readonly stats: ShimStats = {
    signals: 0,
    batches: 0,
    records: 0,
    bytes: 0,
    backpressureWaits: 0,
    fetchPauses: 0,
    maxPendingSeen: 0,
    signalRetries: 0,
    consumerRestarts: 0,
    holds: 0,
  };
  private readonly source: KafkaSourceSpec;
  private readonly slots: WorkflowSlot[];
  private consumer: GroupConsumer | null = null;
  private stopping = false;
  private watcher: NodeJS.Timeout | null = null;
  private watching: Promise<void> | null = null;
  private committer: NodeJS.Timeout | null = null;
  private committing: Promise<void> | null = null;
  /** Next offsets of delivered batches not yet committed, by topic-partition. */
  private readonly delivered = new Map<string, { topic: string; partition: number; nextOffset: string }>();
  /** Most bytes queued per workflow before its partitions are paused. */
  private readonly queueBytes: number;
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
      queue: [],
      queuedBytes: 0,
      sending: null,
      signalling: false,
      paused: [],
      held: null,
      heldRun: null,
      querying: null,
      progress: null,
    }));
    this.taskQueue = taskQueueOf(job.pipeline.name, job.client.config);
    this.queueBytes = Math.max(options.fetchBytes, options.maxBatchBytes);
  }

  /** Joins the consumer group and starts delivering; returns once consuming has begun. */
  async start(): Promise<void> {
    await this.startConsumer();
    this.watcher = setInterval(() => {
      // One round at a time; `stop` waits for the last one, so no call outlives the client.
      this.watching ??= this.watch().finally(() => (this.watching = null));
    }, 1_000);
    this.committer = setInterval(() => void this.commit(), COMMIT_EVERY_MS);
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
    // Pauses belong to the consumer that made them; a new one fetches every partition afresh.
    for (const slot of this.slots) slot.paused = [];
    await consumer.start((batch, control) => this.onBatch(batch, control));
    this.logger.info({ groupId: this.source.groupId, topics: this.source.topics, workflows: this.slots.length }, "shim consuming");
  }

  /**
   * Cuts one fetched partition batch into micro-batches and queues them all for the partition's
   * workflow; when its queue is full already, pauses the partition instead (the batch is fetched
   * again on resume). A queue holds at most `queueBytes` plus one fetch per partition.
   */
  private async onBatch(batch: PartitionBatch, control: BatchControl): Promise<void> {
    const slot = this.slots[workflowIndexOf(batch.partition, this.slots.length)]!;
    if (!this.live(slot) || !control.active()) return;
    if (slot.queuedBytes >= this.queueBytes) {
      slot.paused.push(control.pause());
      this.stats.fetchPauses++;
      return;
    }
    const { messages } = batch;
    for (let i = 0; i < messages.length;) {
      let j = i;
      let bytes = 0;
      while (j < messages.length && j - i < this.options.maxBatchRecords) {
        const size = messageBytes(messages[j]!);
        if (j > i && bytes + size > this.options.maxBatchBytes) break;
        bytes += size;
        j++;
      }
      const slice = messages.slice(i, j);
      const meta = {
        topic: batch.topic,
        partition: batch.partition,
        from: Number(slice[0]!.offset),
        to: Number(slice[slice.length - 1]!.offset),
        count: slice.length,
        bytes,
      };
      slot.queue.push({ meta, records: encodeBatch(slice), firstAt: Number(slice[0]!.timestamp) });
      slot.queuedBytes += bytes;
      i = j;
    }
    control.resolve(messages[messages.length - 1]!.offset);
    this.send(slot);
  }

  private live(slot: WorkflowSlot): boolean {
    return !this.stopping && !slot.closing;
  }

  /** Starts the slot's sender unless it runs. */
  private send(slot: WorkflowSlot): void {
    if (slot.sending || slot.queue.length === 0 || !this.live(slot)) return;
    slot.sending = this.drain(slot)
      .catch((err: unknown) => this.logger.error({ err: (err as Error).message, workflow: slot.index }, "shim sender failed"))
      .finally(() => {
        slot.sending = null;
        // Batches queued after the sender's last look.
        this.send(slot);
      });
  }

  /**
   * Signals the slot's queue in order, waiting for room and checkpoint holds; what queued meanwhile
   * goes in one signal (up to the workflow's room and `SIGNAL_BYTES` encoded). Resumes paused
   * partitions once the queue is empty.
   */
  private async drain(slot: WorkflowSlot): Promise<void> {
    while (slot.queue.length > 0) {
      if (!(await this.waitForRoom(slot))) break;
      const room = Math.max(1, this.options.maxUnacked - slot.pending);
      let n = 0;
      let encoded = 0;
      while (n < slot.queue.length && n < room && (n === 0 || encoded + slot.queue[n]!.records.byteLength <= SIGNAL_BYTES))
        encoded += slot.queue[n++]!.records.byteLength;
      const take = slot.queue.slice(0, n);
      const t0 = Date.now();
      slot.signalling = true;
      let delivered: boolean;
      try {
        delivered = await this.deliver(slot, take);
      } finally {
        slot.signalling = false;
      }
      if (!delivered) break;
      slot.queue.splice(0, n);
      for (const { meta } of take) {
        slot.queuedBytes -= meta.bytes;
        this.delivered.set(`${meta.topic}:${meta.partition}`, { topic: meta.topic, partition: meta.partition, nextOffset: String(meta.to + 1) });
      }
      // Resumed only once the queue is empty: resuming at the first free byte would refetch whole fetches to keep one batch of each.
      if (slot.paused.length > 0 && slot.queue.length === 0) for (const resume of slot.paused.splice(0)) resume();
      // Where a signal's time in the shim went: age of its oldest record when sent, then the signal itself.
      this.logger.debug(
        {
          workflow: slot.index,
          batches: take.length,
          records: take.reduce((k, b) => k + b.meta.count, 0),
          encodedBytes: encoded,
          ageMs: t0 - Math.min(...take.map((b) => b.firstAt)),
          signalMs: Date.now() - t0,
          queued: slot.queue.length,
        },
        "batches delivered",
      );
    }
    if (!this.live(slot)) {
      // The job is stopping: what is queued is not delivered (its offsets were never committed).
      slot.queue = [];
      slot.queuedBytes = 0;
    }
  }

  /** Commits the offsets of delivered batches (a hint for restarts: the workflows drop what they have seen). */
  private commit(): Promise<void> {
    return (this.committing ??= this.commitDelivered().finally(() => (this.committing = null)));
  }

  private async commitDelivered(): Promise<void> {
    const consumer = this.consumer;
    if (!consumer || this.delivered.size === 0) return;
    const offsets = [...this.delivered.values()];
    this.delivered.clear();
    try {
      await consumer.commit(offsets);
    } catch (err) {
      // Usually a rebalance: the next commit carries newer offsets; a partition now elsewhere only gets an older hint.
      this.logger.info({ err: (err as Error).message, partitions: offsets.length }, "offset commit refused; the next one carries them");
      for (const o of offsets) if (!this.delivered.has(`${o.topic}:${o.partition}`)) this.delivered.set(`${o.topic}:${o.partition}`, o);
    }
  }

  /** Waits until the workflow has room for one more batch and no checkpoint hold is on; false when nothing more may be sent. */
  private async waitForRoom(slot: WorkflowSlot): Promise<boolean> {
    let waited = false;
    for (;;) {
      if (!this.live(slot)) return false;
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
        return true;
      }
    }
  }

  /**
   * Holds the workflow's batches while run `runId` checkpoints: waits for the signal under way, tells
   * the run (hold signal), and lets batches go again once the run has closed (or after `HOLD_MAX_MS`).
   */
  private async hold(slot: WorkflowSlot, runId: string): Promise<void> {
    slot.heldRun = runId;
    let release!: () => void;
    slot.held = new Promise((r) => (release = r));
    const started = Date.now();
    const deadline = started + HOLD_MAX_MS;
    try {
      while (slot.signalling && Date.now() < deadline) await sleep(2);
      const temporal = this.job.client.temporal;
      await this.job.handle(slot.index).signal(HOLD_SIGNAL, runId);
      // The run's result long-polls its close: it ends (continued as new, or stopped) as soon as the run does.
      const closed = await temporal.connection
        .withDeadline(deadline, () => temporal.workflow.getHandle(this.job.workflowIds[slot.index]!, runId, { followRuns: false }).result())
        .then(
          () => true,
          (err: unknown) => (err instanceof WorkflowContinuedAsNewError ? true : Date.now() < deadline),
        );
      if (closed) this.stats.holds++;
      this.logger.debug({ workflow: slot.index, runId, ms: Date.now() - started, closed }, "checkpoint hold over");
    } catch (err) {
      this.logger.debug({ err: (err as Error).message, workflow: slot.index, runId }, "checkpoint hold failed; batches flow again");
    } finally {
      slot.held = null;
      release();
    }
  }

  /** Signals the batches in one signal (starting the workflow if needed), retrying while the server is unreachable. */
  private async deliver(slot: WorkflowSlot, batches: Outgoing[]): Promise<boolean> {
    const cutAt = Date.now();
    const metas: Array<Omit<StreamBatch, "records">> = batches.map(({ meta }) => ({ ...meta, cutAt }));
    const records = batches.map((b) => b.records);
    const job = this.job;
    const input = job.inputs[slot.index]!;
    for (let attempt = 1; ; attempt++) {
      if (!this.live(slot)) return false;
      try {
        await job.client.temporal.workflow.signalWithStart(STREAM_WORKFLOW, {
          workflowId: job.workflowIds[slot.index]!,
          taskQueue: this.taskQueue,
          args: [input],
          signal: BATCH_SIGNAL,
          signalArgs: [metas, ...records],
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
        slot.pending += batches.length;
        slot.sent += batches.length;
        this.stats.signals++;
        for (const b of batches) {
          this.stats.batches++;
          this.stats.records += b.meta.count;
          this.stats.bytes += b.meta.bytes;
          shimMetrics.delivered(job.pipeline.name, b.meta.topic, b.meta.count, (Date.now() - cutAt) / 1000);
        }
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
      }
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
      if (this.committer) clearInterval(this.committer);
      await this.watching?.catch(() => undefined);
      // A signal under way finishes; then the last delivered offsets are committed.
      await Promise.all(this.slots.flatMap((s) => (s.sending ? [s.sending] : [])));
      await this.committing;
      await this.commit();
      await this.consumer?.stop().catch((err: unknown) => this.logger.warn({ err: (err as Error).message }, "consumer stop failed"));
      this.logger.info({ ...this.stats }, "shim stopped");
      this.finished();
    }
    await this.done;
  }
}
