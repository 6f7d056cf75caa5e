/**
 * The input of a what-if: the range of a streaming job's source topics it recorded, read back from
 * Kafka (read_committed, per partition), and cut into units the way the job cut its batches where
 * its lineage topic says so. `--from`/`--to` are offsets (`[topic:]partition:offset`, comma
 * separated) or times (ISO), which the broker's offset-for-time lookup turns into offsets. Below a
 * partition's log start offset the records come from the job's retained copy (`whatif.retain`); a
 * range that starts below both fails with `RangeUnavailableError`.
 */
import { createHash } from "node:crypto";
import { UsageError } from "../../core/errors.js";
import type { StreamSlice } from "../../core/plan/job.js";
import type { BatchLineage } from "../../core/plan/lineage.js";
import { topicPartition } from "../../core/plan/stream.js";
import { encodeBatch } from "../../connectors/kafka/batch-codec.js";
import type { ConsumedMessage, KafkaClient } from "../../connectors/kafka/client.js";
import { readRetained } from "../../connectors/kafka/retained-input.js";
import { RangeUnavailableError } from "./errors.js";

/** One end of a what-if range: offsets per partition, or a time. */
export type RangeBound =
  { kind: "offsets"; offsets: Array<{ topic: string | null; partition: number; offset: number }> } | { kind: "time"; at: number; text: string };

/** Reads `--from`/`--to`: `[topic:]partition:offset[,...]`, or an ISO time. */
export function parseRangeBound(text: string, flag: string): RangeBound {
  if (/^\d{4}-\d{2}-\d{2}/.test(text)) {
    const at = Date.parse(text);
    if (Number.isNaN(at)) throw new UsageError(`${flag} ${text}: not a time (ISO 8601, e.g. 2026-12-03T08:00:00Z)`);
    return { kind: "time", at, text };
  }
  const offsets = text.split(",").map((part) => {
    const m = /^(?:(.+):)?(\d+):(\d+)$/.exec(part.trim());
    if (!m) throw new UsageError(`${flag} ${text}: give offsets as partition:offset (or topic:partition:offset), comma separated, or an ISO time`);
    return { topic: m[1] ?? null, partition: Number(m[2]), offset: Number(m[3]) };
  });
  return { kind: "offsets", offsets };
}

/** The records of one source partition in the range `[from, to)`. */
export interface PartitionRange {
  topic: string;
  partition: number;
  from: number;
  to: number;
  records: ConsumedMessage[];
}

/** The offset `bound` gives `topic[partition]` (null: the bound does not name it). */
function offsetOf(bound: RangeBound | undefined, topic: string, partition: number, byTime: Map<number, number> | null): number | null {
  if (!bound) return null;
  if (bound.kind === "time") return byTime?.get(partition) ?? null;
  const hit = bound.offsets.find((o) => o.partition === partition && (o.topic === null || o.topic === topic));
  return hit ? hit.offset : null;
}

/**
 * What the range covers of each partition of `topics`, with its records, read_committed; below the
 * log start, from the job's retained copy in `retained` (`retainDirOf`) when there is one.
 */
export async function readRecordedRange(
  kafka: KafkaClient,
  topics: readonly string[],
  from?: RangeBound,
  to?: RangeBound,
  retained?: string,
): Promise<PartitionRange[]> {
  const admin = await kafka.admin();
  const plans: Array<{ topic: string; partition: number; low: number; start: number; end: number }> = [];
  try {
    for (const topic of topics) {
      const offsets = await admin.partitionOffsets(topic);
      const byTime = async (b: RangeBound | undefined): Promise<Map<number, number> | null> => {
        if (b?.kind !== "time") return null;
        const found = await admin.offsetsForTime(topic, b.at);
        // No record at or after the time: the partition's end.
        return new Map(
          found.map((o) => [o.partition, Number(o.offset) < 0 ? Number(offsets.find((x) => x.partition === o.partition)?.high ?? 0) : Number(o.offset)]),
        );
      };
      const [fromTimes, toTimes] = [await byTime(from), await byTime(to)];
      for (const bound of [from, to]) {
        for (const o of bound?.kind === "offsets" ? bound.offsets : []) {
          const names = o.topic === topic || (o.topic === null && topics.length === 1);
          if (names && !offsets.some((x) => x.partition === o.partition)) {
            throw new UsageError(`topic ${topic} has no partition ${o.partition} (it has ${offsets.length})`);
          }
        }
      }
      for (const { partition, low, high } of offsets) {
        const start = offsetOf(from, topic, partition, fromTimes) ?? Number(low);
        const end = Math.min(offsetOf(to, topic, partition, toTimes) ?? Number(high), Number(high));
        plans.push({ topic, partition, low: Number(low), start, end });
      }
    }
  } finally {
    await admin.close();
  }
  const ranges: PartitionRange[] = [];
  for (const p of plans) {
    const held =
      p.end <= Math.max(p.start, p.low)
        ? []
        : (await kafka.readToEnd(p.topic, [p.partition], new Map([[p.partition, Math.max(p.start, p.low)]]))).filter(
            (m) => Number(m.offset) >= p.start && Number(m.offset) < p.end,
          );
    held.sort((a, b) => Number(a.offset) - Number(b.offset));
    // Below the log start (a range from an offset below it, or from a time older than the first record held): the retained copy.
    const byTime = from?.kind === "time" && p.start === p.low && p.low > 0 && (held.length === 0 || Number(held[0]!.timestamp) > from.at);
    if (p.start >= p.low && !byTime) {
      ranges.push({ topic: p.topic, partition: p.partition, from: p.start, to: p.end, records: held });
      continue;
    }
    const requested = byTime && from?.kind === "time" ? `time ${from.text}` : `offset ${p.start}`;
    const copy = retained ? await readRetained(retained, p.topic, p.partition, byTime ? 0 : p.start, Math.min(p.low, p.end)) : { first: null, records: [] };
    let start = p.start;
    if (byTime && from?.kind === "time") {
      // The copy reaches back to the time when its first record is older than it; the range starts at the first record at or after it.
      const older = copy.records.length > 0 && Number(copy.records[0]!.timestamp) <= from.at;
      if (!older) throw new RangeUnavailableError(p.topic, p.partition, requested, p.low, copy.first);
      start = Number(copy.records.find((m) => Number(m.timestamp) >= from.at)?.offset ?? p.low);
    } else if (copy.first === null || copy.first > p.start) {
      throw new RangeUnavailableError(p.topic, p.partition, requested, p.low, copy.first);
    }
    const records = [...copy.records.filter((m) => Number(m.offset) >= start), ...held];
    ranges.push({ topic: p.topic, partition: p.partition, from: start, to: p.end, records });
  }
  return ranges;
}

/** One unit of a what-if: the slices of one source partition it reads, encoded as a stage activity gets them. */
export interface RangeUnit {
  slices: StreamSlice[];
  records: Uint8Array[];
  /** Hash of what the unit reads (positions and contents): with the stage's hash, its memo key. */
  inputHash: string;
  count: number;
}

/** Hash of a unit's records: topic, partition, and each record's offset, key, value, timestamp and headers. */
function hashOf(topic: string, partition: number, records: readonly ConsumedMessage[]): string {
  const h = createHash("sha256").update(`${topic}\n${partition}\n`);
  for (const r of records) {
    h.update(JSON.stringify([r.offset, r.key?.toString("base64") ?? null, r.value?.toString("base64") ?? null, r.timestamp, r.headers]));
    h.update("\n");
  }
  return h.digest("hex");
}

/**
 * The source range each of the job's units read, per `topic:partition`, from its lineage lines (a
 * unit that merged batches read them all at once; overlapping ranges are joined). A what-if unit
 * that reads what the job's unit read makes the same batched model requests (embeddings), which
 * the response cache answers.
 */
export function jobBatchesOf(lines: readonly BatchLineage[]): Map<string, Array<[from: number, to: number]>> {
  const ranges = new Map<string, Array<[number, number]>>();
  for (const line of lines) {
    const own = new Map<string, [number, number]>();
    for (const slice of line.slices) {
      const m = /^(.+)\[(\d+)\]@(\d+)-(\d+)$/.exec(slice);
      if (!m) continue;
      const key = topicPartition(m[1]!, Number(m[2]));
      const [from, to] = [Number(m[3]), Number(m[4])];
      const seen = own.get(key);
      own.set(key, seen ? [Math.min(seen[0], from), Math.max(seen[1], to)] : [from, to]);
    }
    for (const [key, range] of own) ranges.set(key, [...(ranges.get(key) ?? []), range]);
  }
  for (const [key, list] of ranges) {
    list.sort((a, b) => a[0] - b[0]);
    const joined: Array<[number, number]> = [];
    for (const r of list) {
      const last = joined.at(-1);
      if (last && r[0] <= last[1]) last[1] = Math.max(last[1], r[1]);
      else joined.push([r[0], r[1]]);
    }
    ranges.set(key, joined);
  }
  return ranges;
}

/**
 * Cuts each partition's records into units: as the job's units where `batches` covers them, else
 * of at most `maxRecords` each.
 */
export function unitsOf(
  ranges: readonly PartitionRange[],
  maxRecords: number,
  batches: ReadonlyMap<string, ReadonlyArray<readonly [number, number]>> = new Map(),
): RangeUnit[] {
  const units: RangeUnit[] = [];
  for (const r of ranges) {
    const known = batches.get(topicPartition(r.topic, r.partition)) ?? [];
    let current: ConsumedMessage[] = [];
    let currentBatch = -1;
    const close = (): void => {
      if (current.length === 0) return;
      const from = Number(current[0]!.offset);
      const to = Number(current[current.length - 1]!.offset);
      units.push({
        slices: [{ topic: r.topic, partition: r.partition, from, to, skipBelow: from, seq: units.length }],
        records: [encodeBatch(current)],
        inputHash: hashOf(r.topic, r.partition, current),
        count: current.length,
      });
      current = [];
    };
    for (const m of r.records) {
      const offset = Number(m.offset);
      const batch = known.findIndex(([from, to]) => offset >= from && offset <= to);
      if (batch !== currentBatch || (batch < 0 && current.length >= maxRecords)) close();
      currentBatch = batch;
      current.push(m);
    }
    close();
  }
  return units;
}
