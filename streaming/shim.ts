/**
 * The streaming shim: consumes the job's Kafka topics, cuts micro-batches (`shim/batching.ts`) and
 * queues them for the partition workflow that owns their partition, whose sender delivers them by
 * signal (`shim/sender.ts`), holding them while a run checkpoints (`shim/checkpoint-hold.ts`).
 * Offsets of delivered batches are committed every second (`shim/offset-commits.ts`), and the
 * workflows' progress is watched every second (`shim/progress-watch.ts`).
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "pino";
import type { KafkaSourceSpec } from "../core/api/connectors.js";
import { kafkaSourceOf, keyedTopicsOf, workflowIndexOf } from "../core/plan/stream.js";
import type { BatchControl, GroupConsumer, KafkaClient, PartitionBatch } from "../connectors/kafka/client.js";
import { taskQueueOf } from "../client/task-queue.js";
import { redriveTopicOf } from "../core/plan/redrive.js";
import { totalProgress, type StreamJob, type StreamJobProgress } from "./stream-job.js";
import { cutBatches, type BatchLimits } from "./shim/batching.js";
import { batchTokensOf } from "../core/plan/batch-tokens.js";
import { OffsetCommits } from "./shim/offset-commits.js";
import { newShimStats, type ShimOptions, type ShimStats } from "./shim/options.js";
import { ProgressWatch } from "./shim/progress-watch.js";
import { LagWatch } from "./shim/lag-watch.js";
import { serveMetrics, type MetricsEndpoint } from "../monitoring/server.js";
import { ServerCalls } from "./shim/server-calls.js";
import { WorkflowSender, type SenderHost } from "./shim/sender.js";
import { SavepointBarrierWatch } from "./shim/savepoint-barrier.js";
import { checkUserTopics, ensureJobTopics } from "./job-topics.js";

export { shimOptionsOf, type ShimOptions, type ShimStats } from "./shim/options.js";

/** Feeds one streaming job from Kafka. */
export class KafkaShim {
  readonly stats: ShimStats = newShimStats();
  private readonly source: KafkaSourceSpec;
  private readonly senders: WorkflowSender[];
  private readonly watch: ProgressWatch;
  private readonly commits: OffsetCommits;
  private consumer: GroupConsumer | null = null;
  private readonly lag: LagWatch;
  private readonly barrier: SavepointBarrierWatch;
  /** How fetched batches are cut: the options' caps, and tokens in a pipeline whose LLM operators have a tokens-per-minute limit. */
  private readonly limits: BatchLimits;
  private metrics: MetricsEndpoint | null = null;
  private stopping = false;
  private finished!: () => void;
  /** Resolves when the shim has stopped (by `stop()`, or because the job was stopped). */
  readonly done: Promise<void> = new Promise((r) => (this.finished = r));

  constructor(
    private readonly job: StreamJob,
    private readonly kafka: KafkaClient,
    private readonly options: ShimOptions,
    private readonly logger: Logger,
  ) {
    const source = kafkaSourceOf(job.inputs[0]!.plan);
    if (!source) throw new Error(`pipeline "${job.pipeline.name}" has no Kafka source: it is a bounded job; submit it instead`);
    this.source = source;
    this.limits = { ...options, tokens: batchTokensOf(job.pipeline.compile().functions, job.client.config.llm) };
    const host: SenderHost = {
      job,
      options,
      stats: this.stats,
      logger,
      taskQueue: taskQueueOf(job.pipeline.name, job.client.config),
      calls: new ServerCalls(job.client, logger),
      stopping: () => this.stopping,
      refresh: (sender) => this.watch.refresh(sender),
      delivered: (batches) => this.commits.add(batches),
      workflowEnded: () => this.onJobStopping(),
    };
    this.senders = job.inputs.map((_, index) => new WorkflowSender(host, index));
    const barrierTopics = new Set([...source.topics, this.redriveTopic()]);
    this.barrier = new SavepointBarrierWatch(job, this.senders, (topic) => barrierTopics.has(topic), logger);
    this.watch = new ProgressWatch({ ...host, senders: this.senders, watched: () => this.barrier.update() });
    this.commits = new OffsetCommits(() => this.consumer, logger);
    const ref = { pipeline: job.pipeline.name, jobId: job.jobId };
    this.lag = new LagWatch(
      ref,
      kafka,
      () => [...source.topics, ...this.repartitionTopics()],
      () => this.senders.map((s) => s.progress),
      logger,
    );
  }

  /** Joins the consumer group and starts delivering; returns once consuming has begun. */
  async start(): Promise<void> {
    this.logger.info({ pipeline: this.job.pipeline.name, jobId: this.job.jobId, workflows: this.senders.length }, "shim starting");
    // Metrics first: a port in use stops the shim before it joins the group.
    this.metrics = await serveMetrics(this.job.client.config.monitoring, this.logger);
    const input = this.job.inputs[0]!;
    const created = await checkUserTopics(this.kafka, input.plan, this.options.createTopics ? { partitions: this.job.inputs.length } : undefined);
    if (created.length > 0) this.logger.info({ topics: created, partitions: this.job.inputs.length }, "created the job's missing topics (kafka.create-topics)");
    await ensureJobTopics(this.kafka, input.plan, input.jobId, input.stream.lineageTopic);
    await this.startConsumer();
    this.watch.start();
    this.commits.start();
    this.lag.start();
  }

  /** The repartition topics of the job's keyed operators: read like its sources, always from their beginning. */
  private repartitionTopics(): string[] {
    const input = this.job.inputs[0]!;
    return keyedTopicsOf(input.plan, input.jobId).flatMap((t) => (t.repartition === null ? [] : [t.repartition]));
  }

  /** The job's redrive topic: re-driven dead letters (`sage dlq redrive`), read like a source from its beginning. */
  private redriveTopic(): string {
    const input = this.job.inputs[0]!;
    return redriveTopicOf(input.plan.pipeline, input.jobId);
  }

  private async startConsumer(): Promise<void> {
    const o = this.options;
    const consumer = this.kafka.consumer({
      groupId: this.source.groupId,
      topics: this.source.topics,
      earliestTopics: [...this.repartitionTopics(), this.redriveTopic()],
      fromBeginning: this.source.startFrom === "earliest",
      maxWaitMs: o.bufferTimeoutMs,
      minBytes: Math.min(o.maxBatchBytes, o.fetchBytes),
      maxBytesPerPartition: o.fetchBytes,
      concurrency: Math.max(1, this.senders.length * 2),
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
    for (const sender of this.senders) sender.forgetPauses();
    this.barrier.forgetPauses();
    await consumer.start((batch, control) => this.onBatch(batch, control));
    this.logger.info({ groupId: this.source.groupId, topics: this.source.topics, workflows: this.senders.length }, "shim consuming");
  }

  /**
   * Cuts one fetched partition batch into micro-batches and queues them all for the partition's
   * workflow; when its queue is full already, pauses the partition instead (the batch is fetched
   * again on resume).
   */
  private async onBatch(batch: PartitionBatch, control: BatchControl): Promise<void> {
    const sender = this.senders[workflowIndexOf(batch.partition, this.senders.length)]!;
    if (!sender.live() || !control.active()) return;
    if (this.barrier.holds(batch.topic)) {
      this.barrier.pause(control.pause());
      return;
    }
    if (sender.full()) {
      sender.pauseFetch(control.pause());
      this.stats.fetchPauses++;
      return;
    }
    if (sender.budgetPaused()) {
      sender.pauseFetch(control.pause());
      this.stats.budgetPauses++;
      return;
    }
    sender.enqueue(cutBatches(batch, this.limits));
    control.resolve(batch.messages[batch.messages.length - 1]!.offset);
    sender.send();
  }

  /**
   * The job's progress from the shim's own last queries (at most a second old while it runs). A
   * report reads this instead of querying again: a query of its own would compete with the shim's.
   */
  progress(): StreamJobProgress {
    return totalProgress(this.senders.map((s) => s.progress));
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
      this.commits.stop();
      await this.watch.stop();
      await this.lag.stop();
      // A signal under way finishes; then the last delivered offsets are committed.
      await Promise.all(this.senders.map((s) => s.settled()));
      await this.commits.flush();
      await this.consumer?.stop().catch((err: unknown) => this.logger.warn({ err: (err as Error).message }, "consumer stop failed"));
      await this.metrics?.close();
      this.logger.info({ ...this.stats }, "shim stopped");
      this.finished();
    }
    await this.done;
  }
}
