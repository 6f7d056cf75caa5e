/**
 * What a stage reads (after Flink's `StreamTask` input): a file split, a slice of a collection, a
 * user `SourceFunction`'s split, the Kafka records of a streaming unit, or an edge batch from an
 * upstream stage. Each driver hands records to the stage's entry, which counts them in; a source
 * record that cannot be decoded is counted in and dead-lettered.
 */
import type { SourceFunction } from "../../core/api/functions.js";
import { NonRetryableError, SourceError } from "../../core/errors.js";
import type { LogicalNode } from "../../core/plan/logical.js";
import { readEdgeBatch } from "../../connectors/file/edge-batches.js";
import { readFileSplit, type FileSplit } from "../../connectors/file/source.js";
import { decodeBatch } from "../../connectors/kafka/batch-codec.js";
import { CONTROL_HEADER, decodeSourceRecord, rawValue } from "../../connectors/kafka/records.js";
import type { DeadLetters } from "./dead-letters.js";
import { pushAll, type Push } from "./push.js";
import type { StreamCommit } from "./stream-commit.js";
import type { StageUnit } from "./unit.js";
import { SOURCE_ENTRY } from "./chain.js";
import { driveRedriveSlice, driveRedriveSplit } from "./redrive-input.js";
import { redriveTopicOf } from "../../core/plan/redrive.js";
import type { StreamSlice } from "../../core/plan/job.js";
import type { KeyedRun } from "./keyed.js";
import type { KeyedRecord } from "../../core/plan/key-groups.js";
import { edgeKey } from "../../core/plan/physical.js";
import { keyedOperatorsOf, topicPartition } from "../../core/plan/stream.js";
import { WatermarkValve } from "./watermarks.js";
import type { UnitLineage } from "./unit-lineage.js";

/** Reads a stage's input into the chain through `entry`. */
interface SourceDriver {
  unit: StageUnit;
  node: LogicalNode;
  entry: Push;
  /** Streaming: reads one slice of the job's redrive topic (re-driven dead letters). */
  redriveSlice: (slice: StreamSlice, records: Uint8Array) => Promise<void>;
  /** A source record that cannot be read: counted in, and dead-lettered. */
  reject: (raw: unknown, err: unknown) => Promise<void>;
}

/** Reads the batch that came on the stage's incoming edge `input.edge` into its entry. */
export async function driveEdgeBatch(unit: StageUnit, entries: Map<string, Push>): Promise<void> {
  const { input, stage } = unit;
  const entry = input.edge === undefined ? undefined : entries.get(input.edge);
  if (!entry) throw new NonRetryableError(`stage ${stage.id} has no incoming edge "${String(input.edge)}"`);
  const records = input.batchRef ? await readEdgeBatch(unit.staging, input.batchRef) : (input.batch ?? []);
  await pushAll(records, entry);
}

/**
 * A Kafka source stage's keyed operators behind a source-partitioned keyBy: before each record,
 * their watermark moves to what the records before it make of this workflow's source partitions.
 */
export interface LocalKeyed {
  runs: KeyedRun[];
  valve: WatermarkValve;
}

/** Reads the source stage's split (bounded jobs), slices (streaming jobs) or redrive input into its entries. */
export async function driveSource(
  unit: StageUnit,
  entries: Map<string, Push>,
  deadLetters: DeadLetters,
  stream: StreamCommit | null,
  records: Uint8Array[],
  local: LocalKeyed | null = null,
): Promise<void> {
  const node = unit.node(unit.stage.operators[0]!);
  const counts = unit.countsOf(node.id);
  if (unit.input.runtime.redrive) return driveRedriveSplit(unit, entries, deadLetters);
  const driver: SourceDriver = {
    unit,
    node,
    entry: entries.get(SOURCE_ENTRY)!,
    redriveSlice: (slice, recs) => driveRedriveSlice(unit, entries, deadLetters, stream!, slice, recs),
    reject: (raw, err) => {
      counts.in++;
      return deadLetters.write(node, raw, err, 1);
    },
  };
  if (stream) return driveStream(driver, stream, records, local);
  const spec = node.source!;
  if (spec.kind === "file") return driveFileSplit(driver, spec.format);
  if (spec.kind === "collection") return driveCollection(driver);
  return driveFunction(driver);
}

/** The unit's lineage when its outputs can name a single source record: a source stage without keyed operators. */
function traced(unit: StageUnit): UnitLineage | null {
  return unit.lineage && keyedOperatorsOf(unit.stage).length === 0 ? unit.lineage : null;
}

async function driveFileSplit({ unit, entry, reject }: SourceDriver, format: "lines" | "jsonl"): Promise<void> {
  const split = unit.input.split!.descriptor as unknown as FileSplit;
  const lineage = traced(unit);
  for await (const chunk of readFileSplit(split, format)) {
    for (const rec of chunk) {
      if (lineage) {
        lineage.start = rec.offset;
        lineage.length = rec.bytes;
      }
      const p = rec.ok ? entry(rec.value) : reject(rec.raw, new NonRetryableError(rec.reason));
      if (p) await p;
    }
    unit.host.heartbeat();
  }
}

async function driveCollection({ unit, node, entry }: SourceDriver): Promise<void> {
  const items = (await unit.host.registry.function<unknown[]>(unit.compiled, node)) ?? [];
  const [from, to] = unit.input.split!.descriptor as [number, number];
  const lineage = traced(unit);
  for (let i = from; i < to; i++) {
    if (lineage) lineage.start = i;
    const p = entry(items[i]);
    if (p) await p;
    unit.tick();
  }
}

async function driveFunction({ unit, node, entry }: SourceDriver): Promise<void> {
  const source = await unit.host.registry.function<SourceFunction<unknown>>(unit.compiled, node);
  const records: unknown = source.read(unit.input.split!.descriptor, unit.sourceContext(node));
  if (typeof records !== "object" || records === null || !(Symbol.iterator in records || Symbol.asyncIterator in records)) {
    throw new SourceError(
      `source "${node.name}": read() must return an iterable or async iterable of records, got ${records === null ? "null" : typeof records}`,
    );
  }
  const lineage = traced(unit);
  let index = 0;
  for await (const v of records as AsyncIterable<unknown> | Iterable<unknown>) {
    // A user source's record is named by its place in the split.
    if (lineage) lineage.start = index++;
    const p = entry(v);
    if (p) await p;
    unit.tick();
  }
}

/** Streaming: decodes each slice and pushes every record not accepted before into the chain. */
async function driveStream(
  { unit, node, entry, reject, redriveSlice }: SourceDriver,
  stream: StreamCommit,
  records: Uint8Array[],
  local: LocalKeyed | null,
): Promise<void> {
  const spec = node.source!;
  const { slices } = stream.stream;
  const redriveTopic = redriveTopicOf(unit.compiled.plan.pipeline, unit.input.jobId);
  if (spec.kind !== "kafka" || records.length !== slices.length) {
    throw new NonRetryableError(
      `stage ${unit.stage.id} got ${records.length} record payload(s) for ${slices.length} stream slice(s), or does not start with a Kafka source`,
    );
  }
  const now = stream.stream.processingTime ?? Date.now();
  const watermarked = local !== null && local.valve.bound !== null;
  if (watermarked) await advanceAll(local.runs, local.valve.watermark());
  for (const [i, slice] of slices.entries()) {
    stream.currentSlice = i;
    if (slice.topic === redriveTopic) {
      await redriveSlice(slice, records[i]!);
      continue;
    }
    const origin = topicPartition(slice.topic, slice.partition);
    const recountFrom = stream.recountFrom[i] ?? slice.skipBelow;
    for (const rec of decodeBatch(records[i]!)) {
      if (rec.offset < recountFrom) continue;
      // Committed by an earlier attempt whose result was lost: run again for its counts only.
      stream.recounting = rec.offset < slice.skipBelow;
      stream.current = rec;
      unit.eventTime = Number(rec.timestamp);
      let value: unknown;
      try {
        value = decodeSourceRecord(spec, slice.topic, slice.partition, rec);
      } catch (err) {
        await reject(rawValue(rec), err);
        continue;
      }
      if (watermarked) {
        const p = advanceAll(local.runs, local.valve.watermark());
        if (p) await p;
      }
      unit.assignedTime = undefined;
      const p = entry(value);
      if (p) await p;
      if (local && unit.assignedTime !== undefined) local.valve.raise(origin, unit.assignedTime, now);
      unit.tick();
      const out = partOut(stream);
      if (out) await out;
    }
  }
  stream.current = null;
  stream.currentSlice = -1;
  stream.recounting = false;
  if (!local) return;
  if (watermarked) await advanceAll(local.runs, local.valve.watermark());
  await advanceAll(local.runs, now, true);
}

/** A turn of the event loop now and then while a part of the unit goes out ahead (`StreamCommit.yieldDue`). */
function partOut(stream: StreamCommit): Promise<void> | undefined {
  return stream.yieldDue() ? new Promise((resolve) => setImmediate(resolve)) : undefined;
}

/** Advances every run's watermark (or processing time) to `to`. */
function advanceAll(runs: readonly KeyedRun[], to: number, processingTime = false): void | Promise<void> {
  let pending: Promise<void> | undefined;
  for (const run of runs) {
    const p = pending ? pending.then(() => advance(run, to, processingTime)) : advance(run, to, processingTime);
    if (p) pending = p;
  }
  return pending;
}

function advance(run: KeyedRun, to: number, processingTime: boolean): void | Promise<void> {
  return processingTime ? run.advanceProcessingTime(to) : run.advanceWatermark(to);
}

/**
 * A keyed stage of a bounded job: reads every batch its key-group range received, in source order
 * (by upstream shard), advancing the watermark before each record to the one a single reader of
 * the whole input would have had there: the largest event time of the earlier units and of the
 * record's own unit before it, minus the bound, minus 1. With inputs from several sources there is
 * no single order, so the watermark stays back until the input ends (no record is late). At the
 * end the watermark and the processing clock go to +Infinity: every window fires.
 */
export async function driveKeyedUnit(unit: StageUnit, run: KeyedRun, entries: Map<string, Push>): Promise<void> {
  const { batches, maxTimestamps } = unit.input.keyed!;
  const shards = Object.keys(maxTimestamps).sort();
  const before = new Map<string, number>();
  let max = -Infinity;
  for (const shard of shards) {
    before.set(shard, max);
    max = Math.max(max, maxTimestamps[shard] ?? -Infinity);
  }
  const sources = new Set(shards.map((s) => s.split("-")[0]));
  const edges = new Map(unit.compiled.plan.edges.map((e) => [edgeKey(e), e] as const));
  const ordered = [...batches].sort((a, b) => (a.shard < b.shard ? -1 : a.shard > b.shard ? 1 : a.edge < b.edge ? -1 : a.edge > b.edge ? 1 : 0));
  for (const batch of ordered) {
    const entry = entries.get(batch.edge);
    const edge = edges.get(batch.edge);
    if (!entry || !edge) throw new NonRetryableError(`stage ${unit.stage.id} has no incoming edge "${batch.edge}"`);
    const spec = sources.size === 1 ? (run.node.eventTime?.[edge.toInput ?? 0] ?? null) : null;
    const earlier = before.get(batch.shard) ?? -Infinity;
    for (const rec of (await readEdgeBatch(unit.staging, batch.ref)) as KeyedRecord[]) {
      if (spec && rec.t !== undefined) {
        const p = run.advanceWatermark(Math.max(earlier, rec.w ?? -Infinity) - spec.outOfOrdernessMs - 1);
        if (p) await p;
      }
      const p = entry(rec);
      if (p) await p;
    }
    unit.host.heartbeat();
  }
  await run.advanceWatermark(Infinity);
  await run.advanceProcessingTime(Infinity);
}

/**
 * A keyed stage of a streaming job: reads its repartition slices. Data records advance their
 * origin's event time to the largest before them (`w`), watermark records to what the upstream
 * unit saw; before each record the watermark moves to the minimum over every source partition
 * (`origins`), minus the bound, minus 1; with `withIdleness`, origins whose event time stood still
 * for that long are left out. Returns the event time per origin (and `@origin`: when it last moved) after the unit.
 */
export async function driveKeyedStream(
  unit: StageUnit,
  run: KeyedRun,
  entries: Map<string, Push>,
  stream: StreamCommit,
  records: Uint8Array[],
  origins: readonly string[],
): Promise<Record<string, number>> {
  const valve = new WatermarkValve(stream.stream.eventTime, origins, run.node.eventTime ?? [], stream.stream.processingTime ?? Date.now());
  const watermarked = valve.bound !== null;
  const bySide = new Map(unit.compiled.plan.edges.filter((e) => e.toStage === unit.stage.id).map((e) => [e.toInput ?? 0, entries.get(edgeKey(e))!] as const));
  const { slices } = stream.stream;
  if (records.length !== slices.length)
    throw new NonRetryableError(`stage ${unit.stage.id} got ${records.length} record payload(s) for ${slices.length} slice(s)`);
  if (watermarked) await run.advanceWatermark(valve.watermark());
  for (const [i, slice] of slices.entries()) {
    stream.currentSlice = i;
    for (const rec of decodeBatch(records[i]!)) {
      if (rec.offset < slice.skipBelow) continue;
      stream.current = rec;
      if (rec.headers[CONTROL_HEADER] !== undefined) {
        // A watermark record: what upstream saw of each origin, stamped with when it saw it (for idleness).
        const { watermarks } = JSON.parse(rec.value ?? "{}") as { watermarks?: Record<string, number> };
        for (const [origin, t] of Object.entries(watermarks ?? {})) valve.raise(origin, t, Number(rec.timestamp));
      } else {
        const env = JSON.parse(rec.value ?? "null") as KeyedRecord & { o?: string; s?: number };
        if (env.o !== undefined && env.w !== undefined) valve.raise(env.o, env.w);
        if (watermarked) {
          const p = run.advanceWatermark(valve.watermark());
          if (p) await p;
        }
        unit.eventTime = env.t;
        const p = bySide.get(env.s ?? 0)!(env);
        if (p) await p;
      }
      unit.tick();
      const out = partOut(stream);
      if (out) await out;
    }
  }
  if (watermarked) await run.advanceWatermark(valve.watermark());
  stream.current = null;
  stream.currentSlice = -1;
  // Processing-time timers due by now fire here; a timer unit fires them at the time its workflow timer fired.
  await run.advanceProcessingTime(stream.stream.processingTime ?? Date.now());
  return valve.eventTime;
}
