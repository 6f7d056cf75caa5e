/**
 * The contract of dead-letter re-drives: where a re-driven record enters a job (its stage and
 * operator), what it carries (the redrive and its earlier failures), and the names of the topics,
 * headers and files a redrive uses. Pure: read by the client, the activities and the workflows.
 */
import type { PhysicalPlan, StageEdge } from "./physical.js";

/** Headers of a re-driven Kafka record and of a dead letter that has a history. */
export const REDRIVE_HEADERS = {
  /** The operator the record failed in, where it enters again. */
  operator: "sage-redrive-operator",
  /** The redrive that sent the record. */
  redrive: "sage-redrive",
  /** JSON array of the record's earlier failures (`Failure[]`), oldest first. */
  history: "sage-history",
  /** Where the record first came from (`topic[partition]@offset`). */
  origin: "sage-origin",
  /** The source record's own timestamp (its event time), kept beside the dead letter's. */
  timestamp: "sage-timestamp",
} as const;

/** Most earlier failures a record carries (the oldest are dropped first). */
export const MAX_HISTORY = 10;
/** Longest error text kept per failure in a history. */
export const MAX_HISTORY_ERROR = 500;

/** One failure of a record: where, why, after how many tries, and under which redrive. */
export interface Failure {
  /** The job whose run dead-lettered it. */
  job: string;
  operator: string;
  /** `Name: message`. */
  error: string;
  attempts: number;
  /** When it was dead-lettered (ISO time), if known. */
  at?: string;
  /** The redrive whose re-driven record failed here (absent: the first failure). */
  redrive?: string;
}

/** What a re-driven record carries through the job: its redrive, earlier failures and first origin. */
export interface Lineage {
  redrive: string;
  history: Failure[];
  /** Where the record first came from (a source position or a bounded job's shard). */
  origin?: string;
}

/** One line of a bounded redrive's input file: a dead letter on its way back in. */
export interface RedriveEnvelope {
  /** Id of the dead letter it re-drives. */
  id: string;
  /** The stage that reads it (`redriveEntryOf`). */
  stage: string;
  /** The operator it failed in, where it enters again. */
  operator: string;
  /** The record as the operator received it (a source operator's: the raw line). */
  record: unknown;
  /** A keyed operator's key (encoded), when it failed in one. */
  key?: string;
  /** Its event time, if it had one. */
  timestamp?: number;
  lineage: Lineage;
}

/** What the runtime options of a bounded redrive job say (`JobRuntimeOptions.redrive`). */
export interface RedriveRuntime {
  /** The redrive's id. */
  redrive: string;
  /** Absolute path of the input file (`RedriveEnvelope` lines). */
  input: string;
  /** Source stages that read it (the others read nothing). */
  stages: string[];
  /** Absolute path where the records that fail again are published. */
  deadLetters: string;
}

/** The per-job topic a streaming job reads re-driven records from (one partition; read like a source). */
export function redriveTopicOf(pipeline: string, jobId: string): string {
  return `sage.${pipeline}.${jobId}.redrive`;
}

/** The topic that records which dead letters of a dead-letter topic were re-driven, and by which redrive. */
export function redriveLedgerTopicOf(deadLetterTopic: string): string {
  return `${deadLetterTopic}.redrives`;
}

/** Key of the entry of operator `id` in the map a stage's chain returns (beside its source and edge entries). */
export function operatorEntryKey(id: string): string {
  return `op:${id}`;
}

/** How a re-driven record enters a plan: the source stage that reads it, and the edge it takes when its operator is in another stage. */
export interface RedriveEntry {
  stage: string;
  edge: StageEdge | null;
}

/**
 * Where a record that failed in `operator` enters `plan` again, or why it cannot: the operator's own
 * stage when that stage reads a source, else a source stage with an edge straight into it. A record
 * of an operator with several inputs cannot: its dead letter does not say which input it came on.
 */
export function redriveEntryOf(
  plan: Pick<PhysicalPlan, "nodes" | "stages" | "edges">,
  operator: string,
  /** The dead letter's key: a keyed operator's letter without one is a window or timer that failed to fire, not a record. */
  key: string | null = null,
): RedriveEntry | { refused: string } {
  const node = plan.nodes.find((n) => n.id === operator);
  if (!node) return { refused: `the plan has no operator "${operator}"` };
  if (node.kind === "keyed" && key === null) return { refused: `a window or timer of "${operator}" failed to fire: what it dead-lettered is not a record` };
  if (node.kind === "sink" && node.inputs.length === 0) return { refused: `"${operator}" reads nothing` };
  const inputs = node.inputs.filter((i) => !i.feedback);
  if (inputs.length > 1 && node.kind !== "union")
    return { refused: `"${operator}" has ${inputs.length} inputs and its dead letters do not say which one a record came on` };
  const own = plan.stages.find((s) => s.operators.includes(operator));
  if (own?.source) return { stage: own.id, edge: null };
  const sources = new Set(plan.stages.filter((s) => s.source).map((s) => s.id));
  const edge = plan.edges.find((e) => e.toOperator === operator && !e.feedback && sources.has(e.fromStage));
  if (edge) return { stage: edge.fromStage, edge };
  return { refused: `"${operator}" is more than one stage boundary away from every source` };
}

/** A failure as a history entry: its error text cut to `MAX_HISTORY_ERROR`. */
export function historyEntry(failure: Failure): Failure {
  return failure.error.length <= MAX_HISTORY_ERROR ? failure : { ...failure, error: `${failure.error.slice(0, MAX_HISTORY_ERROR - 1)}…` };
}

/** `history` with `failure` added, keeping the newest `MAX_HISTORY`. */
export function withFailure(history: readonly Failure[], failure: Failure): Failure[] {
  return [...history, historyEntry(failure)].slice(-MAX_HISTORY);
}
