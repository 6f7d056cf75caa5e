/**
 * The contract of per-record lineage in streaming jobs: the compact `sage-lineage` header every
 * Kafka output record carries (its source position and its batch), and the one line per committed
 * batch on the job's lineage topic that names the partition workflow, run and activity attempt.
 * Per-record data never enters workflow history: the header travels with the record, the batch
 * line in the same Kafka transaction. Pure: read by the activities, the client and the CLI.
 */

/** Header of an output record (and of a dead letter): `<source position>|<batch id>`. */
export const LINEAGE_HEADER = "sage-lineage";

/** The lineage topic of a streaming job: one line per committed batch, keyed by batch id. */
export function lineageTopicOf(pipeline: string, jobId: string): string {
  return `sage.${pipeline}.${jobId}.lineage`;
}

/** Topic configs of a lineage topic: no time retention (its lines explain outputs kept for however long their topics keep them). */
export const LINEAGE_TOPIC_CONFIGS: Readonly<Record<string, string>> = { "retention.ms": "-1" };

/** Id of a batch: the stage, the partition workflow's shard and the first merged batch's sequence number. */
export function batchIdOf(stage: string, shard: string, seq: number | string): string {
  return `${stage}.${shard}.${seq}`;
}

/** What the `sage-lineage` header of one record says. */
export interface RecordLineage {
  /** The source record it came from (`topic[partition]@offset`); null past a stage boundary. */
  source: string | null;
  batch: string;
}

/** The header value for `lineage`. */
export function formatLineage(lineage: RecordLineage): string {
  return `${lineage.source ?? ""}|${lineage.batch}`;
}

/** Reads a `sage-lineage` header value; null when it is not one. */
export function parseLineage(value: string): RecordLineage | null {
  const bar = value.lastIndexOf("|");
  if (bar < 0 || bar === value.length - 1) return null;
  const source = value.slice(0, bar);
  return { source: source === "" ? null : source, batch: value.slice(bar + 1) };
}

/** A source or output position: a partition of a topic and an offset in it. */
export interface TopicPosition {
  topic: string;
  partition: number;
  offset: number;
}

/** Reads `topic[partition]@offset`; null when `ref` is not one. */
export function parsePosition(ref: string): TopicPosition | null {
  const m = /^(.+)\[(\d+)\]@(\d+)$/.exec(ref);
  if (!m) return null;
  return { topic: m[1]!, partition: Number(m[2]), offset: Number(m[3]) };
}

/** One line of the lineage topic: who ran a batch, in the transaction that committed it. */
export interface BatchLineage {
  batch: string;
  stage: string;
  /** The partition workflow, the run that committed the batch and the stage activity's attempt. */
  workflowId: string;
  runId: string;
  attempt: number;
  /** The source ranges the batch read (`topic[partition]@from-to`). */
  slices: string[];
  /** When the batch's transaction was committed (ISO time). */
  at: string;
  /** The model calls the batch made (absent: none). */
  llm?: LlmCallLineage[];
}

/**
 * One model call made while a unit ran: the model that answered, the request's hash and the key of
 * the cached response (the response cache's file name; another model's request when the downgrade
 * policy answered it). `at` is the source record in flight when the call was made (streaming:
 * `topic[partition]@offset`; bounded: its first byte or index), null for a call made for a whole
 * batch (a `mapBatch`, past a stage boundary, a keyed operator).
 */
export interface LlmCallLineage {
  at: string | null;
  operator: string;
  model: string;
  request: string;
  /** The cache key, when it is not `request` (a downgraded call). */
  key?: string;
  /** A `mapBatch` call of a bounded unit: the records of its batch (as `at` names one); absent: the whole unit's. */
  batch?: string[];
}

/** The calls of `calls` that shaped the record from `source`: its own, those for a batch it was in, and those made for its whole unit. */
export function callsOf(calls: readonly LlmCallLineage[] | undefined, source: string | null): LlmCallLineage[] {
  return (calls ?? []).filter((c) => (c.at === null ? c.batch === undefined || (source !== null && c.batch.includes(source)) : c.at === source));
}

/** Where a bounded job's source record sits: a file and a byte range, or an index of a collection or a user source's split. */
export type SourcePoint = { kind: "file"; path: string; start: number; end: number } | { kind: "collection" | "function"; name: string; index: number };

/**
 * The sidecar of one staged file-sink shard of a bounded job (written with the shard, by the
 * attempt that wrote it): who wrote it and, per output line, where its source record sits.
 */
export interface ShardLineage {
  stage: string;
  /** The unit of work (split or batch) id. */
  shard: string;
  /** The split it read: its index and descriptor (null: an edge batch, past a stage boundary). */
  split: { index: number; descriptor: unknown } | null;
  workflowId: string;
  runId: string;
  attempt: number;
  /** When the shard was finished (ISO time). */
  at: string;
  /** The source the positions are in: a file path, or a collection's or user source's name; null when no line names a single record. */
  source: { kind: "file"; path: string } | { kind: "collection" | "function"; name: string } | null;
  /** Output lines in the shard. */
  lines: number;
  /**
   * Per output line, comma separated: `<start delta>:<length>` (file) or `<index delta>` (other
   * sources) in base 36, each delta from the line before (the first from 0); empty for a line
   * with no single source record (past a `mapBatch`).
   */
  positions: string;
  llm?: LlmCallLineage[];
}
