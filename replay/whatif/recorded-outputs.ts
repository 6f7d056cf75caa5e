/**
 * The base of a what-if run without `--base`: the outputs the job itself wrote for the range, read
 * back read_committed from its Kafka sink topics and its dead letters, each placed by its
 * `sage-lineage` header (its source position, or past a stage boundary its batch, whose line on the
 * lineage topic names the source ranges it read). Outputs of the range that retention (or a
 * deleteRecords) removed fail with `RecordedOutputsUnavailableError`, never a silently short base.
 */
import { LINEAGE_HEADER, parseLineage, parsePosition, type BatchLineage } from "../../core/plan/lineage.js";
import type { PhysicalPlan } from "../../core/plan/physical.js";
import type { WhatifOutput } from "../../core/whatif/output-diff.js";
import type { ConsumedMessage, KafkaClient } from "../../connectors/kafka/client.js";
import { RecordedOutputsUnavailableError, WhatifUnsupportedError } from "./errors.js";
import type { PartitionRange, RangeUnit } from "./recorded-range.js";

/** One line of the job's lineage topic, and its offset there (the order its batches committed in). */
export interface JobBatchLine {
  line: BatchLineage;
  offset: number;
}

/** What `readRecordedOutputs` reads. */
export interface RecordedOutputsOptions {
  kafka: KafkaClient;
  plan: PhysicalPlan;
  jobId: string;
  deadLetterTopic: string;
  /** The range of the what-if, and its units (outputs past a stage boundary are placed by unit). */
  ranges: readonly PartitionRange[];
  units: readonly RangeUnit[];
  /** The job's lineage lines. */
  lines: readonly JobBatchLine[];
}

/** A source range a batch line lists: `topic[partition]@from-to` (inclusive). */
interface SliceRef {
  topic: string;
  partition: number;
  from: number;
  to: number;
}

function sliceRefOf(slice: string): SliceRef | null {
  const m = /^(.+)\[(\d+)\]@(\d+)-(\d+)$/.exec(slice);
  return m ? { topic: m[1]!, partition: Number(m[2]), from: Number(m[3]), to: Number(m[4]) } : null;
}

/** The value of a record as the diff sees it: parsed when it is JSON text. */
function valueOf(m: ConsumedMessage): unknown {
  if (m.value === null) return null;
  const text = m.value.toString("utf8");
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

/** The outputs the job wrote for the range, placed as the what-if places its own. */
export async function readRecordedOutputs(o: RecordedOutputsOptions): Promise<WhatifOutput[]> {
  const inRange = (topic: string, partition: number, offset: number): boolean =>
    o.ranges.some((r) => r.topic === topic && r.partition === partition && offset >= r.from && offset < r.to);
  const overlaps = (s: SliceRef): boolean => o.ranges.some((r) => r.topic === s.topic && r.partition === s.partition && s.from < r.to && s.to >= r.from);
  /** The what-if unit that reads (part of) `s`, or -1. */
  const unitOf = (s: SliceRef): number =>
    o.units.findIndex((u) => u.slices.some((x) => x.topic === s.topic && x.partition === s.partition && s.from <= x.to && s.to >= x.from));

  // Per batch id, its lines (a batch id may repeat across runs of the job): the last one whose slices overlap the range wins.
  const lineOf = new Map<string, { unit: number; offset: number }>();
  let firstInRange = Infinity;
  for (const { line, offset } of o.lines) {
    const slices = line.slices.map(sliceRefOf).filter((s): s is SliceRef => s !== null && overlaps(s));
    if (slices.length === 0) continue;
    firstInRange = Math.min(firstInRange, offset);
    lineOf.set(line.batch, { unit: unitOf(slices[0]!), offset });
  }

  const sinks = o.plan.nodes.flatMap((n) => (n.sink?.kind === "kafka" ? [n.sink.topic] : []));
  const topics = [...new Set([...sinks, o.deadLetterTopic])];
  const admin = await o.kafka.admin();
  const outputs: WhatifOutput[] = [];
  try {
    for (const topic of topics) {
      const missing = await admin.missingTopics([topic]);
      if (missing.length > 0) continue;
      const offsets = await admin.partitionOffsets(topic);
      const messages = await o.kafka.readToEnd(topic);
      const dead = topic === o.deadLetterTopic;
      for (const { partition, low, high } of offsets) {
        if (Number(low) === 0 || firstInRange === Infinity) continue;
        // Records below `low` are gone. They are the outputs of batches committed up to the first record still held:
        // when that record's batch did not commit before every batch of the range, some of the range's outputs may be among them.
        const held = messages
          .filter((m) => m.partition === partition && (!dead || m.headers["sage-job"] === o.jobId))
          .sort((a, b) => Number(a.offset) - Number(b.offset));
        const header = held[0]?.headers[LINEAGE_HEADER];
        const first = header === undefined ? null : parseLineage(header);
        const committed = first ? o.lines.filter((l) => l.line.batch === first.batch).map((l) => l.offset) : [];
        if (Number(low) === Number(high) || committed.length === 0 || Math.max(...committed) >= firstInRange) {
          throw new RecordedOutputsUnavailableError(topic, partition, Number(low));
        }
      }
      for (const m of messages) {
        const header = m.headers[LINEAGE_HEADER];
        if (header === undefined) {
          if (dead && m.headers["sage-job"] !== o.jobId) continue;
          throw new WhatifUnsupportedError(
            `${topic}[${m.partition}]@${m.offset} carries no ${LINEAGE_HEADER} header (the job ran with kafka.lineage off): ` +
              `without it a what-if cannot tell which outputs came from the range; give --base <module the job runs>`,
          );
        }
        // The dead-letter topic is the pipeline's: only this job's letters.
        if (dead && m.headers["sage-job"] !== o.jobId) continue;
        const lineage = parseLineage(header);
        if (!lineage) continue;
        const position = lineage.source ? parsePosition(lineage.source) : null;
        if (position) {
          if (inRange(position.topic, position.partition, position.offset))
            outputs.push({ topic, key: m.key?.toString("utf8") ?? null, value: valueOf(m), from: lineage.source! });
          continue;
        }
        const unit = lineOf.get(lineage.batch)?.unit ?? -1;
        if (unit >= 0) outputs.push({ topic, key: m.key?.toString("utf8") ?? null, value: valueOf(m), from: `unit ${unit}` });
      }
    }
  } finally {
    await admin.close();
  }
  return outputs;
}
