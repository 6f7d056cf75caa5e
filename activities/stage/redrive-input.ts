/**
 * Re-driven dead letters entering a stage run: the lines of a bounded redrive job's input file, or
 * the records of a streaming job's redrive topic. Each enters at the operator it failed in (not at
 * the source: the operators before it already ran on it), with its lineage, so that a record that
 * fails again goes back to the dead letters with its earlier failures.
 */
import { NonRetryableError } from "../../core/errors.js";
import { keyGroupOf, type KeyedRecord } from "../../core/plan/key-groups.js";
import { DEFAULT_KEY_GROUPS, type LogicalNode } from "../../core/plan/logical.js";
import { REDRIVE_HEADERS, operatorEntryKey, type Failure, type Lineage, type RedriveEnvelope } from "../../core/plan/redrive.js";
import type { StreamSlice } from "../../core/plan/job.js";
import { readFileSplit, type FileSplit } from "../../connectors/file/source.js";
import { decodeBatch, type BatchRecord } from "../../connectors/kafka/batch-codec.js";
import { decodeSourceRecord, positionOf, rawValue } from "../../connectors/kafka/records.js";
import { SOURCE_ENTRY } from "./chain.js";
import type { DeadLetters } from "./dead-letters.js";
import type { Push } from "./push.js";
import type { StreamCommit } from "./stream-commit.js";
import type { StageUnit } from "./unit.js";

/** A re-driven record on its way in: the operator it failed in, and the value that operator received. */
interface Redriven {
  operator: string;
  /** The value to push, or, for a record that failed in the source itself, a function that decodes it again. */
  value: unknown;
  decode?: () => unknown;
  key?: string;
  timestamp?: number;
}

/** Pushes one re-driven record into the chain at its operator; what cannot enter goes back to the dead letters. */
async function inject(unit: StageUnit, entries: Map<string, Push>, deadLetters: DeadLetters, r: Redriven): Promise<void> {
  const source = unit.node(unit.stage.operators[0]!);
  let node: LogicalNode;
  try {
    node = unit.node(r.operator);
  } catch {
    return refuse(unit, deadLetters, source, r.value, `re-driven to operator "${r.operator}", which this plan does not have`);
  }
  unit.eventTime = r.timestamp;
  let value: unknown = r.value;
  let entry = entries.get(operatorEntryKey(node.id));
  if (node.kind === "source") {
    entry = entries.get(SOURCE_ENTRY);
    try {
      value = r.decode ? r.decode() : value;
    } catch (err) {
      unit.countsOf(node.id).in++;
      return deadLetters.write(node, r.value, err, 1);
    }
  } else if (node.kind === "keyed") {
    if (r.key === undefined) return refuse(unit, deadLetters, source, r.value, `re-driven to keyed operator "${node.name}" without its key`);
    const keyed: KeyedRecord = { k: r.key, g: keyGroupOf(r.key, unit.compiled.plan.keyGroups ?? DEFAULT_KEY_GROUPS), v: value };
    if (r.timestamp !== undefined) keyed.t = r.timestamp;
    value = keyed;
  }
  if (!entry) return refuse(unit, deadLetters, source, r.value, `operator "${node.name}" cannot be reached from stage ${unit.stage.id}`);
  const p = entry(value);
  if (p) await p;
  unit.tick();
}

/** A re-driven record that cannot enter this plan: a dead letter again, at the stage's source, saying why. */
function refuse(unit: StageUnit, deadLetters: DeadLetters, source: LogicalNode, value: unknown, why: string): Promise<void> {
  unit.countsOf(source.id).in++;
  return deadLetters.write(source, value, new NonRetryableError(why), 1);
}

/** Bounded redrive job: reads the envelopes of this split that enter through this stage. */
export async function driveRedriveSplit(unit: StageUnit, entries: Map<string, Push>, deadLetters: DeadLetters): Promise<void> {
  const split = unit.input.split!.descriptor as unknown as FileSplit;
  const source = unit.node(unit.stage.operators[0]!);
  const format = source.source?.kind === "file" ? source.source.format : "jsonl";
  for await (const chunk of readFileSplit(split, "jsonl")) {
    for (const rec of chunk) {
      if (!rec.ok) throw new NonRetryableError(`redrive input ${split.path} is damaged: ${rec.reason}`);
      const env = rec.value as RedriveEnvelope;
      if (env.stage !== unit.stage.id) continue;
      deadLetters.lineage = env.lineage;
      const raw = env.record;
      await inject(unit, entries, deadLetters, {
        operator: env.operator,
        value: raw,
        // A line that failed in the source is decoded again, as the source would.
        decode: () => (format === "jsonl" && typeof raw === "string" ? (JSON.parse(raw) as unknown) : raw),
        ...(env.key !== undefined ? { key: env.key } : {}),
        ...(env.timestamp !== undefined ? { timestamp: env.timestamp } : {}),
      });
    }
    unit.host.heartbeat();
  }
  deadLetters.lineage = null;
}

/** The lineage a re-driven Kafka record carries in its headers. */
function lineageOf(rec: BatchRecord, where: string): Lineage {
  const h = rec.headers;
  let history: Failure[] = [];
  try {
    const parsed = JSON.parse(h[REDRIVE_HEADERS.history] ?? "[]") as unknown;
    if (Array.isArray(parsed)) history = parsed as Failure[];
  } catch {
    // A damaged history is dropped, not the record.
  }
  return { redrive: h[REDRIVE_HEADERS.redrive] ?? "unknown", history, origin: h[REDRIVE_HEADERS.origin] ?? where };
}

/** Streaming: the records of one slice of the job's redrive topic, each at the operator its headers name. */
export async function driveRedriveSlice(
  unit: StageUnit,
  entries: Map<string, Push>,
  deadLetters: DeadLetters,
  stream: StreamCommit,
  slice: StreamSlice,
  records: Uint8Array,
): Promise<void> {
  const source = unit.node(unit.stage.operators[0]!);
  const spec = source.source!;
  if (spec.kind !== "kafka") throw new NonRetryableError(`stage ${unit.stage.id} reads a redrive topic but does not start with a Kafka source`);
  for (const rec of decodeBatch(records)) {
    if (rec.offset < slice.skipBelow) continue;
    // Sinks pass the source record's headers on: not the redrive's own.
    stream.current = { ...rec, headers: {} };
    const where = positionOf(slice.topic, slice.partition, rec.offset);
    deadLetters.lineage = lineageOf(rec, where);
    const operator = rec.headers[REDRIVE_HEADERS.operator] ?? source.id;
    let value: unknown = rawValue(rec);
    if (operator !== source.id && rec.value !== null && !rec.valueBase64) {
      try {
        value = JSON.parse(rec.value) as unknown;
      } catch {
        // Left as bytes: the operator sees what it failed on.
      }
    }
    const key = rec.headers["sage-key"];
    await inject(unit, entries, deadLetters, {
      operator,
      value,
      decode: () => decodeSourceRecord(spec, slice.topic, slice.partition, rec),
      ...(key !== undefined ? { key } : {}),
      timestamp: Number(rec.timestamp),
    });
  }
  deadLetters.lineage = null;
  stream.current = null;
}
