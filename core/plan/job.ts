/**
 * The contract between client, workflow and activities: what a job is started with, what a stage
 * activity receives and returns, and what the `progress` query answers. All plain JSON.
 */
import type { SplitDescriptor } from "../api/functions.js";
import type { PhysicalPlan } from "./physical.js";
import type { RedriveRuntime } from "./redrive.js";

/** Workflow type name of the pipeline interpreter. */
export const PIPELINE_WORKFLOW = "pipelineWorkflow";
/** Name of the progress query. */
export const PROGRESS_QUERY = "progress";
/** Activity type that lists the splits of the job's sources. */
export const SPLITS_ACTIVITY = "sage:splits";
/** Activity type that publishes sink outputs and dead letters atomically. */
export const COMMIT_ACTIVITY = "sage:commit";
/** Activity type that removes a cancelled job's staged output. */
export const ABORT_ACTIVITY = "sage:abort";
/** Search attribute holding the pipeline name. */
export const SA_PIPELINE = "SagePipeline";
/** Search attribute holding the job id. */
export const SA_JOB_ID = "SageJobId";

/** Temporal workflow id of a job. */
export function workflowIdOf(pipeline: string, jobId: string): string {
  return `sage/${pipeline}/${jobId}`;
}

/** What a workflow id names: a bounded job, or (with `partition`) a partition workflow of a streaming job. */
export interface WorkflowIdParts {
  pipeline: string;
  jobId: string;
  /** Index of the partition workflow (`sage/<pipeline>/<job>/p<index>`). */
  partition?: number;
}

/** Reads a workflow id made by `workflowIdOf` or `partitionWorkflowId`; null for any other id. */
export function parseWorkflowId(workflowId: string): WorkflowIdParts | null {
  const m = /^sage\/([^/]+)\/([^/]+)(?:\/p(\d+))?$/.exec(workflowId);
  if (!m) return null;
  return { pipeline: m[1]!, jobId: m[2]!, ...(m[3] !== undefined ? { partition: Number(m[3]) } : {}) };
}

/** Activity type of a stage (the Web UI shows it): `stage:split+pair+no-short`. */
export function stageActivityType(stageName: string): string {
  return `stage:${stageName}`;
}

/** Activity timeouts and retry the workflow uses, from configuration. */
export interface JobRuntimeOptions {
  activityTimeoutMs: number;
  heartbeatTimeoutMs: number;
  /** Byte budget of one batch that crosses workflow history. */
  maxBatchBytes: number;
  /** Target bytes per file split. */
  splitBytes: number;
  /**
   * Splits a source stage keeps scheduled per parallel slot beyond the running one, so a worker that
   * finishes a split finds the next one queued instead of waiting a workflow-task round trip.
   */
  splitPrefetch: number;
  /** Streaming stages run as local activities (`kafka.local-activities`). */
  localActivities: boolean;
  /**
   * A streaming partition workflow asks to checkpoint once its run has this many history events
   * (`kafka.events-per-run`), even before the server suggests it: it continues as new when a shim
   * says it holds its batches (hold signal), or by itself at twice the budget.
   */
  eventsPerRun: number;
  /**
   * The same by history bytes (`kafka.history-bytes-per-run`): below the server's own suggestion
   * (4 MiB by default), which closes the run without a hold.
   */
  historyBytesPerRun: number;
  /** A streaming partition workflow checkpoints at least this often (`state.checkpoint-interval`; 0 or absent: only by the budgets). */
  checkpointIntervalMs?: number;
  /** Dead-letter file path (resolved by the worker when empty). */
  deadLetterPath: string | null;
  /** A bounded redrive job: its sources read the redrive's input file instead (`sage dlq redrive`). */
  redrive?: RedriveRuntime;
  /** Bounded jobs: file sinks keep per-line lineage sidecars (`execution.lineage`; absent: off). */
  lineage?: boolean;
}

/** What a job workflow is started with. */
export interface JobInput {
  jobId: string;
  plan: PhysicalPlan;
  params: Record<string, string>;
  runtime: JobRuntimeOptions;
  /** What earlier runs of this job completed (`sage rerun`, continue-as-new). */
  resume?: JobResume;
}

/** Splits completed by earlier runs: skipped by this run, their counts carried over. */
export interface JobResume {
  fromRunId: string;
  /** Completed splits with their counts, by source stage and split index (from `sage rerun`). */
  completed: Record<string, Record<number, StageCounts>>;
  /** Completed splits as inclusive index ranges by source stage (compact; from continue-as-new). */
  done?: Record<string, Array<[number, number]>>;
  /** Counts of the splits in `done`. */
  counts?: StageCounts;
  /** Activities run by earlier runs. */
  activities?: number;
  /** What keyed stages received from the splits in `done`, by keyed stage id (edge-file references). */
  keyed?: Record<string, { batches: Record<number, KeyedBatch[]>; maxTimestamps: Record<string, number | null> }>;
}

/** Inclusive ranges covering a set of indices: [0,1,2,5] -> [[0,2],[5,5]]. */
export function toRanges(indices: Iterable<number>): Array<[number, number]> {
  const sorted = [...new Set(indices)].sort((a, b) => a - b);
  const out: Array<[number, number]> = [];
  for (const i of sorted) {
    const last = out[out.length - 1];
    if (last && last[1] === i - 1) last[1] = i;
    else out.push([i, i]);
  }
  return out;
}

/** True when `index` lies in one of `ranges`. */
export function inRanges(ranges: ReadonlyArray<readonly [number, number]> | undefined, index: number): boolean {
  return (ranges ?? []).some(([from, to]) => index >= from && index <= to);
}

/** Counts per operator id. */
export type StageCounts = Record<string, OperatorCounts>;

/** Records into and out of one operator, and how many went to the dead letters there. */
export interface OperatorCounts {
  in: number;
  out: number;
  dead: number;
}

/** One split of one source stage. */
export interface SplitRef {
  stage: string;
  index: number;
  descriptor: SplitDescriptor;
}

/** Which job an activity works for and how it runs: what every activity of a job receives. */
export interface JobContext {
  jobId: string;
  pipeline: string;
  planHash: string;
  parallelism: number;
  fusion: boolean;
  params: Record<string, string>;
  runtime: JobRuntimeOptions;
}

/** The context of a job from what its workflow was started with. */
export function jobContextOf(input: Pick<JobInput, "jobId" | "plan" | "params" | "runtime">): JobContext {
  const { plan } = input;
  return {
    jobId: input.jobId,
    pipeline: plan.pipeline,
    planHash: plan.hash,
    parallelism: plan.parallelism,
    fusion: plan.fusion,
    params: input.params,
    runtime: input.runtime,
  };
}

/** What a stage activity receives: a split (source stages) or a batch of records (other stages). */
export interface StageInput extends JobContext {
  stage: string;
  /** Stable key of this unit of work (split index path); names sink shards and dead-letter shards. */
  shard: string;
  split?: SplitRef;
  /** A micro-batch from Kafka (source stages of streaming jobs). */
  stream?: StreamUnit;
  /** Records entering the stage (non-source stages) ... */
  batch?: unknown[];
  /** ... or a reference to them outside history (bounded jobs) ... */
  batchRef?: EdgeBatchRef;
  /** ... on this edge (its key). */
  edge?: string;
  /** How many times the records went around each feedback loop, by feedback operator id (absent = never). */
  rounds?: Record<string, number>;
  /** A keyed stage of a bounded job: everything its key-group range received, once every upstream unit is done. */
  keyed?: KeyedUnit;
}

/** Records on a keyed edge written by one upstream unit for one key-group range. */
export interface KeyedBatch {
  edge: string;
  /** The upstream unit's shard: shards sort in source order (split index). */
  shard: string;
  ref: EdgeBatchRef;
}

/** What one instance (key-group range) of a keyed stage of a bounded job reads. */
export interface KeyedUnit {
  /** The operator instance: it serves the key groups `keyGroupRange(instance, parallelism, keyGroups)`. */
  instance: number;
  batches: KeyedBatch[];
  /**
   * The largest event time each upstream unit wrote on a keyed edge, by shard (null: none). With the
   * largest timestamp before a record within its own unit (carried by the record), it gives the
   * watermark a single reader of the whole input would have had before that record.
   */
  maxTimestamps: Record<string, number | null>;
}

/** What a bounded job's unit wrote on one keyed edge: a batch per target instance, and its largest event time. */
export interface KeyedEdgeOutput {
  refs: Record<number, EdgeBatchRef>;
  maxTimestamp: number | null;
}

/** What a stage activity returns. Records appear only for edges that leave the stage. */
export interface StageOutput {
  counts: StageCounts;
  /** Records per outgoing stage edge, keyed by edge key (`edgeKey`) (streaming jobs). */
  outputs: Record<string, unknown[]>;
  /** Bounded jobs: per outgoing edge, a reference to the records written to the job's staging directory. */
  refs?: Record<string, EdgeBatchRef>;
  /** Bounded jobs: per outgoing keyed edge, the records by target instance (collected until every upstream unit is done). */
  keyed?: Record<string, KeyedEdgeOutput>;
  /** Streaming: the stage's largest event time per origin after this unit (it comes back in the next unit). */
  eventTime?: Record<string, number>;
  /** Streaming keyed stages: the earliest processing-time timer after this unit (the workflow sleeps until it; null: none). */
  nextTimer?: number | null;
  /** Streaming stages with keyed operators: each one's state (by uid) in this partition after the unit. */
  states?: Record<string, { entries: number; bytes: number; timers: number }>;
  /** Streaming keyed stages: the state was rebuilt from the changelog for this unit (entries read, ms). */
  restored?: { entries: number; ms: number };
  /** Streaming keyed stages run as activities: the task queue of the worker that ran the unit (it holds the state now). */
  ownerQueue?: string;
  /** Keyed stages: records too late for their windows, dropped (no late-data tag) or sent to the tag, by operator id. */
  late?: Record<string, { dropped: number; side: number }>;
}

/**
 * The edges a stage activity sent records on, each with the records as the next stage receives
 * them: inline (streaming jobs) or by reference (bounded jobs).
 */
export function sentBatches(out: StageOutput): Array<[edge: string, records: { batch: unknown[] } | { batchRef: EdgeBatchRef }]> {
  return [
    ...Object.entries(out.outputs)
      .filter(([, batch]) => batch.length > 0)
      .map(([key, batch]): [string, { batch: unknown[] }] => [key, { batch }]),
    ...Object.entries(out.refs ?? {}).map(([key, batchRef]): [string, { batchRef: EdgeBatchRef }] => [key, { batchRef }]),
  ];
}

/** Records on an edge kept out of workflow history (a claim check): a gzip'd JSON Lines file in the job's staging directory. */
export interface EdgeBatchRef {
  /** Path relative to the job's staging directory. */
  file: string;
  count: number;
  /** Compressed size. */
  bytes: number;
}

/** What `sage:splits` returns: the splits of each source stage. */
export type SplitsByStage = Record<string, SplitRef[]>;

/** Live state of a job, answered by the `progress` query. */
export interface JobProgress {
  pipeline: string;
  jobId: string;
  planHash: string;
  phase: "planning" | "running" | "committing" | "done" | "cancelled" | "failed";
  splitsTotal: number;
  splitsDone: number;
  activities: number;
  counts: StageCounts;
  deadLetters: number;
  /** Set while stage units wait for the `llm.budget` window (policy `pause`). */
  llmBudgetPause?: LlmBudgetPause;
}

/** Stage units waiting on a durable timer because a model call would cross a windowed `llm.budget` limit. */
export interface LlmBudgetPause {
  /** What the last unit to pause would have crossed. */
  reason: string;
  /** When the last unit to pause runs again (ISO time). */
  until: string;
  /** Units waiting. */
  units: number;
}

/** What `sage:commit` returns: where the job's outputs and dead letters were published. */
export interface JobCommit {
  /** Published files per sink id. */
  outputs: Record<string, string>;
  deadLetterPath: string | null;
}

/** The result of a finished job. */
export interface JobResult extends JobProgress, JobCommit {
  startedAt: string;
  finishedAt: string;
}

/** Adds `b` into `a` (counts per operator). */
export function addCounts(a: StageCounts, b: StageCounts): void {
  for (const [op, c] of Object.entries(b)) {
    const t = (a[op] ??= { in: 0, out: 0, dead: 0 });
    t.in += c.in;
    t.out += c.out;
    t.dead += c.dead;
  }
}

/** Total dead letters in a counts table. */
export function deadLetterTotal(counts: StageCounts): number {
  return Object.values(counts).reduce((n, c) => n + c.dead, 0);
}

/** One accepted batch inside a stage activity's unit of work. */
export interface StreamSlice {
  topic: string;
  partition: number;
  from: number;
  to: number;
  skipBelow: number;
  seq: number;
}

/**
 * What the stage activity of a streaming job receives in place of a split: one or more accepted
 * batches, run together in one transaction (the workflow merges batches that queued up). The
 * records of slice i travel as binary argument i + 2 of the activity.
 */
export interface StreamUnit {
  slices: StreamSlice[];
  /** The partition workflow's index (names the transactional ids of the Kafka sinks). */
  workflowIndex: number;
  /** Where records that cannot be processed go, with the reason in headers. */
  deadLetterTopic: string;
  /** The job's lineage topic (absent: no lineage headers, no batch lines). */
  lineageTopic?: string;
  /** Keyed operators keep their outputs' input summaries (`kafka.lineage-inputs`; absent: no). */
  lineageInputs?: boolean;
  /** Largest event time seen so far per origin (source `topic:partition`) by this stage (absent: none yet). */
  eventTime?: Record<string, number>;
  /** A keyed stage's timer unit (no slices): the partition whose processing-time timers are due ... */
  timerPartition?: number;
  /** ... and the time they fire at (the workflow's clock when its durable timer fired). */
  processingTime?: number;
}
