/**
 * The edges that leave a stage for another stage (after Flink's `RecordWriterOutput`): each record
 * is encoded and checked against the payload budget, then kept inline (streaming jobs: records
 * travel through history) or as a JSON line for the edge file written at the end of the unit
 * (bounded jobs: only the file's reference travels). A feedback edge past its round bound
 * dead-letters the record instead.
 */
import { NonRetryableError, PayloadBudgetError } from "../../core/errors.js";
import type { EdgeBatchRef, KeyedEdgeOutput } from "../../core/plan/job.js";
import { instanceOfKeyGroup, type KeyedRecord } from "../../core/plan/key-groups.js";
import { DEFAULT_KEY_GROUPS } from "../../core/plan/logical.js";
import { edgeKey, type StageEdge } from "../../core/plan/physical.js";
import { writeEdgeBatch } from "../../connectors/file/edge-batches.js";
import { checkRecordSize, encodeRecord } from "../record-codec.js";
import type { DeadLetters } from "./dead-letters.js";
import type { Push } from "./push.js";
import type { StageUnit } from "./unit.js";
import type { StreamCommit } from "./stream-commit.js";
import { CONTROL_HEADER } from "../../connectors/kafka/records.js";
import { repartitionTopicOf } from "../../core/plan/stream.js";

/** What one stage run sends on its outgoing edges. */
export class EdgeOutputs {
  /** Streaming jobs: the records per outgoing edge, inline. */
  readonly inline: Record<string, unknown[]> = {};
  /** Bounded jobs: JSON lines per outgoing edge, written to an edge file at the end of the unit. */
  private readonly lines: Record<string, string[]> = {};
  /** Bytes sent on all edges so far, against `maxBatchBytes`. */
  private bytes = 0;
  /** Bounded jobs: JSON lines per keyed edge and target instance, and the largest event time written on the edge. */
  private readonly keyed: Record<string, { lines: Map<number, string[]>; maxTimestamp: number | null }> = {};
  /** Streaming: the repartition topic of each keyed edge written, with its partition count. */
  private readonly repartitions = new Map<string, { topic: string; partitions: number }>();
  /** Streaming: the largest event time per keyed edge and origin (source `topic:partition`), carried from unit to unit. */
  private readonly eventTime: Record<string, Record<string, number>> = {};

  constructor(
    private readonly unit: StageUnit,
    private readonly deadLetters: DeadLetters,
    private readonly stream: StreamCommit | null = null,
  ) {
    for (const [flat, t] of Object.entries(unit.input.stream?.eventTime ?? {})) {
      const at = flat.indexOf("|");
      // The stage's own origins (keyed operators' watermarks) have no edge.
      if (at < 0) continue;
      (this.eventTime[flat.slice(0, at)] ??= {})[flat.slice(at + 1)] = t;
    }
  }

  /** The push that sends records on `edge`. */
  push(edge: StageEdge): Push {
    if (edge.keyed) return this.keyedPush(edge);
    const { input, stage } = this.unit;
    const budget = input.runtime.maxBatchBytes;
    const from = this.unit.node(edge.fromOperator);
    const producer = from.name;
    const key = edgeKey(edge);
    const streaming = input.stream !== undefined;
    const bucket: unknown[] = streaming ? (this.inline[key] ??= []) : (this.lines[key] ??= []);
    const loop = edge.feedback ? this.unit.node(edge.toOperator) : null;
    const maxRounds = loop?.feedback?.maxRounds ?? 0;
    const round = loop ? (input.rounds?.[loop.id] ?? 0) : 0;
    return (v) => {
      if (loop && round + 1 > maxRounds) {
        return this.deadLetters.write(
          from,
          v,
          new NonRetryableError(`feedback "${loop.name}": the record is still looping after ${maxRounds} round(s), its bound`),
          1,
        );
      }
      const json = encodeRecord(v, producer);
      checkRecordSize(json, producer, budget);
      this.bytes += json.length;
      if (this.bytes > budget) {
        throw new PayloadBudgetError(
          `stage "${stage.name}" emitted more than ${budget} bytes toward stage ${edge.toStage} for shard ${input.shard}; ` +
            `lower execution.split-bytes or raise execution.max-batch-bytes`,
        );
      }
      bucket.push(streaming ? v : json);
    };
  }

  /**
   * A keyed edge: each record goes to the instance of the target that serves its key group. Bounded
   * jobs collect it for that instance's edge file, with `w`, the largest event time before it in
   * this unit; streaming jobs write it to the repartition topic in the unit's transaction.
   */
  private keyedPush(edge: StageEdge): Push {
    const { input, compiled } = this.unit;
    const target = compiled.plan.stages.find((s) => s.id === edge.toStage)!;
    const keyGroups = compiled.plan.keyGroups ?? DEFAULT_KEY_GROUPS;
    const producer = this.unit.node(edge.fromOperator).name;
    if (input.stream) return this.repartitionPush(edge, target.parallelism, keyGroups, producer);
    const out = (this.keyed[edgeKey(edge)] ??= { lines: new Map(), maxTimestamp: null });
    return (v) => {
      const rec = v as KeyedRecord;
      const instance = instanceOfKeyGroup(rec.g, target.parallelism, keyGroups);
      const json = encodeRecord(out.maxTimestamp === null ? rec : { ...rec, w: out.maxTimestamp }, producer);
      if (rec.t !== undefined && (out.maxTimestamp === null || rec.t > out.maxTimestamp)) out.maxTimestamp = rec.t;
      let lines = out.lines.get(instance);
      if (!lines) out.lines.set(instance, (lines = []));
      lines.push(json);
    };
  }

  /**
   * Streaming: a keyed record goes to the partition of the target's repartition topic that its key
   * group's instance reads, in the unit's transaction, with its origin (source partition) and the
   * largest event time of that origin before it (`w`), from which the keyed stage makes watermarks;
   * with lineage on, also its source offset (`p`).
   */
  private repartitionPush(edge: StageEdge, parallelism: number, keyGroups: number, producer: string): Push {
    const { input, compiled } = this.unit;
    const stream = this.stream!;
    const topic = repartitionTopicOf(compiled.plan.pipeline, input.jobId, edge.toOperator);
    const side = edge.toInput ?? 0;
    const key = edgeKey(edge);
    // Per edge: a record sent on two keyed edges must not count as "before" itself on the second.
    const seen = (this.eventTime[key] ??= {});
    const lineage = stream.batch !== null;
    this.repartitions.set(key, { topic, partitions: parallelism });
    return (v) => {
      const rec = v as KeyedRecord;
      const origin = stream.sourceOrigin();
      const before = origin === null ? undefined : seen[origin];
      const json = encodeRecord(
        {
          ...rec,
          ...(before !== undefined ? { w: before } : {}),
          ...(origin !== null ? { o: origin } : {}),
          // With lineage on, the source offset too: the keyed operator names its outputs' inputs by it.
          ...(origin !== null && lineage ? { p: stream.current!.offset } : {}),
          ...(side > 0 ? { s: side } : {}),
        },
        producer,
      );
      if (origin !== null && rec.t !== undefined && (before === undefined || rec.t > before)) seen[origin] = rec.t;
      const partition = instanceOfKeyGroup(rec.g, parallelism, keyGroups);
      stream.write(topic, { key: rec.k, value: json, partition, ...(rec.t !== undefined ? { timestamp: String(rec.t) } : {}) });
    };
  }

  /**
   * Streaming, at the end of a unit that wrote on repartition topics: a watermark record to every
   * partition of each, carrying the edge's largest event time per origin, so that a keyed instance
   * that got no record of an origin still sees its time advance. Returns the stage's event time
   * per edge and origin (`edge|origin`), which comes back with the next unit.
   */
  finishRepartitions(): Record<string, number> | undefined {
    if (this.repartitions.size === 0) return undefined;
    const flat: Record<string, number> = {};
    for (const [key, { topic, partitions }] of this.repartitions) {
      const watermarks = this.eventTime[key] ?? {};
      for (const [origin, t] of Object.entries(watermarks)) flat[`${key}|${origin}`] = t;
      const value = JSON.stringify({ watermarks });
      for (let partition = 0; partition < partitions; partition++)
        this.stream!.write(topic, { key: null, value, partition, headers: { [CONTROL_HEADER]: "watermark" } });
    }
    return flat;
  }

  /** Bounded jobs: writes each keyed edge's records to one file per target instance. */
  async sendKeyed(): Promise<Record<string, KeyedEdgeOutput>> {
    const result: Record<string, KeyedEdgeOutput> = {};
    for (const [key, { lines, maxTimestamp }] of Object.entries(this.keyed)) {
      const refs: Record<number, EdgeBatchRef> = {};
      for (const [instance, batch] of lines) refs[instance] = await writeEdgeBatch(this.unit.staging, `${this.unit.input.shard}.${key}@${instance}`, batch);
      result[key] = { refs, maxTimestamp };
    }
    return result;
  }

  /** Bounded jobs: writes each edge's records to its edge file; their references are what history carries. */
  async send(): Promise<Record<string, EdgeBatchRef>> {
    const refs: Record<string, EdgeBatchRef> = {};
    for (const [key, lines] of Object.entries(this.lines)) {
      if (lines.length > 0) refs[key] = await writeEdgeBatch(this.unit.staging, `${this.unit.input.shard}.${key}`, lines);
    }
    return refs;
  }
}
