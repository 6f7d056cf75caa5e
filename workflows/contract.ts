/**
 * The Temporal contract of Sage's workflows as typed definitions, shared by the workflows and their
 * callers (the client, the shim, the CLI) the way Temporal's samples share them: the queries and
 * signals, and the activities the workflows call (the worker implements them). It only defines, so
 * workflow code and Node code import it alike.
 */
import { defineQuery, defineSignal } from "@temporalio/workflow";
import {
  type ABORT_ACTIVITY,
  type COMMIT_ACTIVITY,
  PROGRESS_QUERY,
  type SPLITS_ACTIVITY,
  type JobCommit,
  type JobContext,
  type JobProgress,
  type SplitsByStage,
  type StageInput,
  type StageOutput,
} from "../core/plan/job.js";
import {
  BATCH_SIGNAL,
  BUDGET_PAUSE_SIGNAL,
  HOLD_SIGNAL,
  SAVEPOINT_ACK_SIGNAL,
  SAVEPOINT_BARRIER_SIGNAL,
  SAVEPOINT_RELEASE_SIGNAL,
  STOP_SIGNAL,
  STREAM_INPUT_QUERY,
  type BatchDescription,
  type StreamJobInput,
  type StreamProgress,
} from "../core/plan/stream.js";

/** The `progress` query of a bounded job: splits done, counts per operator, dead letters. */
export const progressQuery = defineQuery<JobProgress>(PROGRESS_QUERY);

/** The `progress` query of a partition workflow: offsets, pending batches, counts. */
export const streamProgressQuery = defineQuery<StreamProgress>(PROGRESS_QUERY);

/**
 * Micro-batches for a partition workflow: their descriptions, then each one's records as one binary
 * payload, in order. The shim sends what queued for the workflow since its last signal in one.
 */
export const batchSignal = defineSignal<[batches: BatchDescription[], ...records: Uint8Array[]]>(BATCH_SIGNAL);

/** Asks a partition workflow to finish the batches it accepted, then stop. */
export const stopSignal = defineSignal(STOP_SIGNAL);

/** A shim holds its batches until this run (by id) has continued as new. */
export const holdSignal = defineSignal<[runId: string]>(HOLD_SIGNAL);

/** The input a partition workflow was started with, without its carried state (`state` is left out). */
export const streamInputQuery = defineQuery<Omit<StreamJobInput, "state">>(STREAM_INPUT_QUERY);

/** A savepoint's barrier (by id): the shim stops feeding source records; processing-time timers wait. */
export const savepointBarrierSignal = defineSignal<[id: string]>(SAVEPOINT_BARRIER_SIGNAL);

/** The shim has stopped feeding source records for the barrier (by id). */
export const savepointAckSignal = defineSignal<[id: string]>(SAVEPOINT_ACK_SIGNAL);

/** The savepoint (by id) is taken or abandoned: the barrier ends. */
export const savepointReleaseSignal = defineSignal<[id: string]>(SAVEPOINT_RELEASE_SIGNAL);

/** A streaming stage unit waits for the LLM budget: why, and until when (ms since the epoch). */
export const budgetPauseSignal = defineSignal<[pause: { reason: string; until: number }]>(BUDGET_PAUSE_SIGNAL);

/** The control activities of a bounded job, by activity type. */
export interface ControlActivities {
  /** Lists the splits of the job's sources. */
  [SPLITS_ACTIVITY]: (input: JobContext) => Promise<SplitsByStage>;
  /** Publishes the sink outputs and the dead letters atomically. */
  [COMMIT_ACTIVITY]: (input: JobContext & { deadLetters: number }) => Promise<JobCommit>;
  /** Removes a cancelled job's staged output. */
  [ABORT_ACTIVITY]: (input: JobContext) => Promise<void>;
}

/**
 * A stage activity (type `stage:<name>`, see `stageActivityType`): runs the stage's operators on one
 * unit of work. The records of a stream batch's slice i follow the input as binary argument i + 2.
 */
export type StageActivity = (input: StageInput, ...records: Uint8Array[]) => Promise<StageOutput>;
