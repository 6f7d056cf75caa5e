/**
 * The contract of streaming jobs (a Kafka source): what the shim signals, what a partition
 * workflow keeps and carries across continue-as-new, and what its `progress` query answers.
 */
import type { KafkaSourceSpec } from "../api/connectors.js";
import { PipelineDefinitionError } from "../errors.js";
import type { JobRuntimeOptions, LlmBudgetPause, StageCounts } from "./job.js";

export type { StreamSlice, StreamUnit } from "./job.js";
import type { LogicalGraph } from "./logical.js";
import { redriveTopicOf } from "./redrive.js";
import type { PhysicalPlan, Stage } from "./physical.js";

/** Workflow type of a partition workflow of a streaming job. */
export const STREAM_WORKFLOW = "streamWorkflow";
/** Signal carrying one micro-batch from the shim. */
export const BATCH_SIGNAL = "sage:batch";
/** Signal asking a partition workflow to finish its accepted batches and stop. */
export const STOP_SIGNAL = "sage:stop";
/**
 * Signal from a shim that saw `checkpoint` in a run's progress: it holds its batches for that run
 * (argument: the run id) until the run has continued as new. The run then checkpoints with no
 * signal racing its close (a signal landing meanwhile makes the server refuse the close, and the
 * worker replays the whole run).
 */
export const HOLD_SIGNAL = "sage:hold";
/**
 * Signals of a savepoint (argument: its id). The barrier asks the shim to stop feeding source
 * records and the workflow to defer its processing-time timers until released; the shim
 * acknowledges it once no source batch of its is queued or under way; the release ends it.
 */
export const SAVEPOINT_BARRIER_SIGNAL = "sage:savepoint-barrier";
export const SAVEPOINT_ACK_SIGNAL = "sage:savepoint-ack";
export const SAVEPOINT_RELEASE_SIGNAL = "sage:savepoint-release";
/**
 * Signal from a worker whose streaming stage unit met a spent `llm.budget` window (argument: why,
 * and until when in ms): Temporal retries the unit after that time, and meanwhile the workflow's
 * progress shows the pause (`sage status`) and its shim stops fetching its partitions.
 */
export const BUDGET_PAUSE_SIGNAL = "sage:llm-budget-pause";
/** Query of a partition workflow's input without its state: the job, its plan and parameters (what a savepoint records). */
export const STREAM_INPUT_QUERY = "sage:input";

/** Workflow id of partition workflow `index` of a streaming job: `sage/<pipeline>/<job>/p<index>`. */
export function partitionWorkflowId(pipeline: string, jobId: string, index: number): string {
  return `sage/${pipeline}/${jobId}/p${index}`;
}

/** Which partition workflow owns a source partition (stable: the same partition always goes to the same workflow). */
export function workflowIndexOf(partition: number, workflows: number): number {
  return partition % workflows;
}

/** The Kafka repartition topic of keyed operator `uid` of a streaming job (its partitions: the operator's instances). */
export function repartitionTopicOf(pipeline: string, jobId: string, uid: string): string {
  return `sage.${pipeline}.${jobId}.${uid}.repartition`;
}

/** The compacted changelog topic of keyed operator `uid` of a streaming job (partition i: instance i's key groups). */
export function changelogTopicOf(pipeline: string, jobId: string, uid: string): string {
  return `sage.${pipeline}.${jobId}.${uid}.changelog`;
}

/** The topic each stage of a streaming job reads: its source topics and the job's redrive topic, or its keyed operator's repartition topic. */
export function entryTopicsOf(plan: Pick<PhysicalPlan, "stages" | "nodes" | "pipeline">, jobId: string): Map<string, string> {
  const byTopic = new Map<string, string>();
  for (const stage of plan.stages) {
    const first = plan.nodes.find((n) => n.id === stage.operators[0]);
    if (stage.source && first?.source?.kind === "kafka")
      for (const t of [...first.source.topics, redriveTopicOf(plan.pipeline, jobId)]) byTopic.set(t, stage.id);
    if (stage.keyed && first) byTopic.set(repartitionTopicOf(plan.pipeline, jobId, first.id), stage.id);
  }
  return byTopic;
}

/** The keyed operators a stage runs: the one it starts with, or those fused behind a source-partitioned keyBy. */
export function keyedOperatorsOf(stage: Pick<Stage, "operators" | "keyed" | "keyedLocal">): string[] {
  return stage.keyed ? [stage.operators[0]!] : (stage.keyedLocal ?? []);
}

/**
 * The changelog topic of each keyed operator of a streaming job, and its repartition topic (null
 * behind a source-partitioned keyBy), with their partition count (the operator's instances).
 */
export function keyedTopicsOf(
  plan: Pick<PhysicalPlan, "stages" | "nodes" | "pipeline">,
  jobId: string,
): Array<{ uid: string; repartition: string | null; changelog: string; partitions: number }> {
  return plan.stages.flatMap((s) =>
    keyedOperatorsOf(s).map((uid) => ({
      uid,
      repartition: s.keyed ? repartitionTopicOf(plan.pipeline, jobId, uid) : null,
      changelog: changelogTopicOf(plan.pipeline, jobId, uid),
      partitions: s.parallelism,
    })),
  );
}

/** `topic:partition`, the key of offset tables. */
export function topicPartition(topic: string, partition: number): string {
  return `${topic}:${partition}`;
}

/** One micro-batch of one source partition, as the shim signals it. */
export interface StreamBatch {
  topic: string;
  partition: number;
  /** Offset of the first and last record in the batch (inclusive; offsets may have gaps). */
  from: number;
  to: number;
  count: number;
  /** Bytes of keys and values in the batch (before encoding). */
  bytes: number;
  /** The records, encoded by the shim (`connectors/kafka/batch-codec.ts`); opaque to the workflow. */
  records: Uint8Array;
  /** When the shim cut the batch (ms since the epoch), for end-to-end latency. */
  cutAt: number;
}

/** A micro-batch as the batch signal describes it: everything but its records, which follow as binary arguments. */
export type BatchDescription = Omit<StreamBatch, "records">;

/** A batch the workflow accepted, with the offset below which its records were already accepted earlier. */
export interface AcceptedBatch extends Omit<StreamBatch, "records"> {
  /** Records with an offset below this were part of an earlier batch (re-batching after a crash): skip them. */
  skipBelow: number;
  /** Sequence number of the batch in this partition workflow (1, 2, ...). */
  seq: number;
}

/** Streaming settings the workflow needs (the shim has its own). */
export interface StreamRuntimeOptions {
  /** Dead-letter topic of the job. */
  deadLetterTopic: string;
  /** The job's lineage topic (`kafka.lineage`; absent: no lineage). */
  lineageTopic?: string;
  /** Keyed outputs name their inputs (`kafka.lineage-inputs`, with a lineage topic; absent: they do not). */
  lineageInputs?: boolean;
}

/** What a partition workflow keeps and carries across continue-as-new. */
export interface StreamState {
  /** Next offset expected per `topic:partition`; anything below it was accepted already. */
  next: Record<string, number>;
  /** Next offset whose batch is fully processed (sinks committed) per `topic:partition`. */
  processed: Record<string, number>;
  /** Accepted batches not yet processed, in arrival order. */
  pending: AcceptedBatch[];
  counts: StageCounts;
  batches: number;
  records: number;
  duplicatesDropped: number;
  activities: number;
  /** Runs of this workflow so far (continue-as-new increments it). */
  runs: number;
  stopping: boolean;
  /** Largest event time seen per origin (source `topic:partition`), by stage: what its watermarks are made of. */
  eventTime?: Record<string, Record<string, number>>;
  /** Times a keyed stage of this workflow rebuilt its state from the changelog. */
  restores?: number;
  /** Keyed stages run as activities: the task queue of the worker holding each one's state, by stage (`workflows/key-group-owners.ts`). */
  owners?: Record<string, string>;
  /** The earliest processing-time timer of each keyed stage, by stage (a durable workflow timer waits for it). */
  timers?: Record<string, number>;
  /** The last checkpoint (continue-as-new) of this workflow. */
  lastCheckpoint?: CheckpointInfo;
  /** Keyed state per operator after its stage's last unit in this workflow. */
  stateSize?: Record<string, { entries: number; bytes: number; timers: number }>;
  /** A savepoint's barrier while it is on (the shim feeds no source records, processing-time timers wait). */
  barrier?: SavepointBarrier;
  /** The savepoint this job was started from. */
  fromSavepoint?: string;
}

/** A savepoint's barrier in a partition workflow: its id, and whether the shim has stopped feeding source records. */
export interface SavepointBarrier {
  id: string;
  acked: boolean;
}

/** What a partition workflow's last checkpoint was: when, how large its run's history, and how long from wanting it to closing. */
export interface CheckpointInfo {
  at: string;
  /** The run it closed (1, 2, ...). */
  run: number;
  historyEvents: number;
  historyBytes: number;
  /** Batches accepted but not run, carried into the next run. */
  carriedBatches: number;
  /** From the run first asking for it (shims hold) to the close, ms. */
  ms: number;
}

/** What a partition workflow is started with. */
export interface StreamJobInput {
  jobId: string;
  plan: PhysicalPlan;
  params: Record<string, string>;
  runtime: JobRuntimeOptions;
  stream: StreamRuntimeOptions;
  /** This workflow's index and the number of partition workflows of the job. */
  index: number;
  workflows: number;
  state?: StreamState;
}

/** Live state of a partition workflow, answered by the `progress` query. */
export interface StreamProgress {
  pipeline: string;
  jobId: string;
  planHash: string;
  index: number;
  phase: "running" | "stopping" | "stopped" | "failed";
  /** Run id of the run that answered. */
  runId?: string;
  /** The run wants to continue as new: shims hold their batches (and say so with the hold signal) until it has. */
  checkpoint?: boolean;
  /** Batches accepted and not yet processed (what the shim's backpressure counts). */
  pending: number;
  batches: number;
  records: number;
  duplicatesDropped: number;
  activities: number;
  runs: number;
  next: Record<string, number>;
  processed: Record<string, number>;
  counts: StageCounts;
  deadLetters: number;
  /** Largest event time per origin, by stage (the watermark is their minimum, minus the bound). */
  eventTime?: Record<string, Record<string, number>>;
  /** Times a keyed stage of this workflow rebuilt its state from the changelog. */
  restores?: number;
  /** The last checkpoint of this workflow. */
  lastCheckpoint?: CheckpointInfo;
  /** Keyed state per operator after its stage's last unit in this workflow (entries, bytes, timers). */
  state?: Record<string, { entries: number; bytes: number; timers: number }>;
  /** The watermark of each keyed operator, by uid (ms since the epoch). */
  watermarks?: Record<string, number>;
  /** A savepoint's barrier while it is on. */
  barrier?: SavepointBarrier;
  /** The savepoint this job was started from. */
  fromSavepoint?: string;
  /** Set while the batch being run waits for the LLM budget (a worker said so by `BUDGET_PAUSE_SIGNAL`). */
  llmBudgetPause?: LlmBudgetPause;
}

/** The Kafka source of a plan, or null for a bounded plan. */
export function kafkaSourceOf(plan: Pick<PhysicalPlan, "nodes">): KafkaSourceSpec | null {
  for (const n of plan.nodes) if (n.source?.kind === "kafka") return n.source;
  return null;
}

/** The Kafka sinks of a plan by topic, each with the name of its first operator. */
export function kafkaSinksOf(plan: Pick<PhysicalPlan, "nodes">): Map<string, string> {
  const sinks = new Map<string, string>();
  for (const n of plan.nodes) if (n.sink?.kind === "kafka" && !sinks.has(n.sink.topic)) sinks.set(n.sink.topic, n.name);
  return sinks;
}

/** True when the plan reads an unbounded source and so runs as a streaming job. */
export function isStreaming(plan: Pick<PhysicalPlan, "nodes">): boolean {
  return kafkaSourceOf(plan) !== null;
}

/**
 * Checks what a streaming graph may contain: Kafka sources only (one consumer group), and sinks
 * that work on unbounded input (no file sinks: they publish once, when a bounded job commits).
 */
export function checkStreamingGraph(graph: LogicalGraph): void {
  const sources = graph.nodes.filter((n) => n.kind === "source");
  const kafka = sources.filter((n) => n.source?.kind === "kafka");
  if (kafka.length === 0) return;
  const other = sources.find((n) => n.source?.kind !== "kafka");
  if (other) {
    throw new PipelineDefinitionError(
      `pipeline "${graph.pipeline}": source "${other.name}" is bounded but source "${kafka[0]!.name}" reads Kafka; a streaming job reads only Kafka sources`,
    );
  }
  const groups = new Set(kafka.map((n) => (n.source as KafkaSourceSpec).groupId));
  if (kafka.length > 1) {
    throw new PipelineDefinitionError(
      `pipeline "${graph.pipeline}": ${kafka.length} Kafka sources (${kafka.map((n) => n.name).join(", ")}); read several topics with one source: KafkaSource.topic([...topics])` +
        (groups.size > 1 ? ` (they also name different consumer groups: ${[...groups].join(", ")})` : ""),
    );
  }
  for (const n of graph.nodes) {
    if (n.sink?.kind === "file") {
      throw new PipelineDefinitionError(
        `pipeline "${graph.pipeline}": sink "${n.name}" writes a file, which is published once when a bounded job commits; a streaming job needs KafkaSink, PrintSink or a SinkFunction`,
      );
    }
    if (n.kind === "feedback") {
      throw new PipelineDefinitionError(`pipeline "${graph.pipeline}": feedback loop "${n.name}" is not supported in a streaming job yet`);
    }
  }
}

/**
 * Checks what a streaming plan's keyed stages need: each keyed operator runs with the job's
 * parallelism (partition i of its repartition topic is read by partition workflow i).
 */
export function checkStreamingPlan(plan: PhysicalPlan): void {
  if (!isStreaming(plan)) return;
  for (const stage of plan.stages) {
    const keyed = keyedOperatorsOf(stage);
    if (keyed.length > 0 && stage.parallelism !== plan.parallelism) {
      throw new PipelineDefinitionError(
        `pipeline "${plan.pipeline}": keyed operator "${keyed[0]}" has parallelism ${stage.parallelism} but the streaming job ${plan.parallelism}; ` +
          `in a streaming job a keyed operator runs with the job's parallelism (leave its parallelism unset)`,
      );
    }
  }
}
