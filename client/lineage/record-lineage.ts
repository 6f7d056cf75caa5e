/**
 * Where one output record of a streaming job came from: its `sage-lineage` header (source position
 * and batch id) read from the record itself, and the batch's line (partition workflow, run id,
 * activity attempt) read from the job's lineage topic. Both live in Kafka, committed with the
 * output, so the answer holds after the job ended and after any continue-as-new.
 */
import { SageError, UsageError } from "../../core/errors.js";
import type { KafkaClient } from "../../connectors/kafka/client.js";
import { LINEAGE_HEADER, callsOf, lineageTopicOf, parseLineage, parsePosition, type BatchLineage, type LlmCallLineage } from "../../core/plan/lineage.js";

/** The output record has no lineage, or its batch line is not on the job's lineage topic. */
export class LineageNotFoundError extends SageError {
  constructor(message: string) {
    super("LINEAGE_NOT_FOUND", message, { input: true });
  }
}

/** What `sage lineage` answers for one output record. */
export interface RecordLineageAnswer {
  /** The record asked about (`topic[partition]@offset`). */
  output: string;
  /** The source record it came from; null for an output made past a stage boundary (see the batch's slices). */
  source: string | null;
  /** The batch, who ran it and over which source ranges. */
  batch: BatchLineage;
  /** The model calls that shaped it: those made for its source record, and those made for its whole batch. */
  llm: LlmCallLineage[];
}

/** The lineage of output record `ref` (`topic[partition]@offset`, also a dead letter's) of job `jobId` of `pipeline`. */
export async function recordLineage(kafka: KafkaClient, pipeline: string, jobId: string, ref: string): Promise<RecordLineageAnswer> {
  const at = parsePosition(ref);
  if (!at) throw new UsageError(`"${ref}" is not an output position: give topic[partition]@offset`);
  const read = await kafka.readToEnd(at.topic, [at.partition], new Map([[at.partition, at.offset]]));
  const record = read.find((m) => Number(m.offset) === at.offset);
  if (!record) throw new LineageNotFoundError(`${ref}: no committed record at that offset`);
  const header = record.headers[LINEAGE_HEADER];
  const lineage = header === undefined ? null : parseLineage(header);
  if (!lineage) throw new LineageNotFoundError(`${ref} has no ${LINEAGE_HEADER} header: it was written with kafka.lineage off, or not by a Sage job`);
  const topic = lineageTopicOf(pipeline, jobId);
  const lines = await kafka.readToEnd(topic).catch((err: unknown) => {
    throw new LineageNotFoundError(`cannot read the lineage topic ${topic} of job ${jobId}: ${(err as Error).message}`);
  });
  // A batch re-run with more batches merged in commits once; the newest committed line is the one that counts.
  const line = lines.filter((m) => m.key?.toString("utf8") === lineage.batch).at(-1);
  if (!line?.value)
    throw new LineageNotFoundError(`${ref} names batch ${lineage.batch}, which job ${jobId} has no lineage line for: another job wrote the record`);
  const batch = JSON.parse(line.value.toString("utf8")) as BatchLineage;
  return { output: ref, source: lineage.source, batch, llm: callsOf(batch.llm, lineage.source) };
}
