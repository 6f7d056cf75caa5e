/**
 * The inputs of a keyed output of a streaming job (a window's result, a rolling aggregate, a join's
 * pair): the summary its `sage-inputs` header carries, and on demand every input, found by scanning
 * the ranges the summary names. Behind a repartition, the keyed operator's repartition topic is
 * scanned (kept without time retention): each record there names its key, event time and source
 * position, so the inputs are the records of the output's key, inside the window, at a position in
 * the summary's ranges. Behind a source-partitioned keyBy there is no repartition: the source
 * ranges are scanned for records whose Kafka key is the output's key (no event-time filter, so a
 * count that differs from the summary's is reported as inexact).
 */
import { UsageError } from "../../core/errors.js";
import type { ConsumedMessage, KafkaClient } from "../../connectors/kafka/client.js";
import { positionOf } from "../../connectors/kafka/records.js";
import { parsePosition } from "../../core/plan/lineage.js";
import { INPUTS_HEADER, inRanges, parseInputs, splitOrigin, type OutputInputs } from "../../core/plan/input-summary.js";
import type { KeyedRecord } from "../../core/plan/key-groups.js";
import { repartitionTopicOf } from "../../core/plan/stream.js";
import { LineageNotFoundError } from "./record-lineage.js";

/** Every input of a keyed output, as `sage lineage --expand` lists them. */
export interface ExpandedInputs {
  /** The source positions (`topic[partition]@offset`), by topic, partition and offset. */
  inputs: string[];
  /** Where they were found: the sample (it held every input), the repartition topic, or the source ranges. */
  from: "sample" | "repartition" | "source";
  /** True when as many were found as the summary counts. */
  exact: boolean;
}

/** The `sage-inputs` summary of output record `ref` (`topic[partition]@offset`); null when the record has none (not a keyed output, or lineage off). */
export async function outputInputs(kafka: KafkaClient, ref: string): Promise<OutputInputs | null> {
  const at = parsePosition(ref);
  if (!at) throw new UsageError(`"${ref}" is not an output position: give topic[partition]@offset`);
  const read = await kafka.readToEnd(at.topic, [at.partition], new Map([[at.partition, at.offset]]));
  const record = read.find((m) => Number(m.offset) === at.offset);
  if (!record) throw new LineageNotFoundError(`${ref}: no committed record at that offset`);
  const header = record.headers[INPUTS_HEADER];
  return header === undefined ? null : parseInputs(header);
}

/** Every input of the keyed output whose summary is `inputs`, of job `jobId` of `pipeline`. */
export async function expandInputs(kafka: KafkaClient, pipeline: string, jobId: string, inputs: OutputInputs): Promise<ExpandedInputs> {
  const { summary } = inputs;
  if (summary.s.length >= summary.n) return result(summary.s, "sample", summary.n);
  const repartition = repartitionTopicOf(pipeline, jobId, inputs.operator);
  const admin = await kafka.admin();
  let missing: string[];
  try {
    missing = await admin.missingTopics([repartition]);
  } finally {
    await admin.close();
  }
  if (missing.length === 0) return result(inRepartition(inputs, await kafka.readToEnd(repartition)), "repartition", summary.n);
  return result(await inSource(kafka, inputs), "source", summary.n);
}

/** The repartition records of the output's key, inside its window, at a position in its ranges. */
function inRepartition(inputs: OutputInputs, records: readonly ConsumedMessage[]): Array<[string, number]> {
  const { key, window, summary } = inputs;
  const found: Array<[string, number]> = [];
  for (const m of records) {
    // Watermark records have no key; the Kafka key is the encoded key, so most records are passed over unparsed.
    if (m.key?.toString("utf8") !== key || !m.value) continue;
    const rec = JSON.parse(m.value.toString("utf8")) as KeyedRecord;
    if (rec.k !== key || rec.o === undefined || rec.p === undefined || !inRanges(summary, rec.o, rec.p)) continue;
    if (window && (rec.t === undefined || rec.t < window.start || rec.t >= window.end)) continue;
    found.push([rec.o, rec.p]);
  }
  return found;
}

/** The source records in the summary's ranges whose Kafka key is the output's key (a source-partitioned keyBy keys them so). */
async function inSource(kafka: KafkaClient, inputs: OutputInputs): Promise<Array<[string, number]>> {
  const decoded = JSON.parse(inputs.key) as unknown;
  const kafkaKey = typeof decoded === "string" ? decoded : inputs.key;
  const found: Array<[string, number]> = [];
  for (const [origin, [lo, hi]] of Object.entries(inputs.summary.r)) {
    const { topic, partition } = splitOrigin(origin);
    for (const m of await kafka.readToEnd(topic, [partition], new Map([[partition, lo]]))) {
      const offset = Number(m.offset);
      if (offset <= hi && m.key?.toString("utf8") === kafkaKey) found.push([origin, offset]);
    }
  }
  return found;
}

/** The positions found, deduplicated and sorted, and whether they are as many as the summary counts. */
function result(found: ReadonlyArray<readonly [string, number]>, from: ExpandedInputs["from"], count: number): ExpandedInputs {
  const unique = new Map<string, [string, number, number]>();
  for (const [origin, offset] of found) {
    const { topic, partition } = splitOrigin(origin);
    unique.set(`${origin}@${offset}`, [topic, partition, offset]);
  }
  const sorted = [...unique.values()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] - b[1] || a[2] - b[2]));
  return { inputs: sorted.map(([t, p, o]) => positionOf(t, p, o)), from, exact: sorted.length === count };
}
