/**
 * The Kafka side of a streaming stage run: what the unit writes to Kafka (sink outputs and dead
 * letters), each message tagged with the source slice it came from, committed once at the end of
 * the unit by the sink protocol (`connectors/kafka/sink.ts`), which skips what an earlier attempt
 * already committed. With lineage on, every output carries a `sage-lineage` header (source position
 * and batch id) and the unit adds its batch line (workflow, run, attempt) to the same transaction;
 * a keyed output adds a `sage-inputs` header, the summary of its own inputs.
 */
import { InternalError } from "../../core/errors.js";
import type { StreamUnit } from "../../core/plan/job.js";
import type { BatchRecord } from "../../connectors/kafka/batch-codec.js";
import type { OutgoingMessage } from "../../connectors/kafka/client.js";
import { positionOf } from "../../connectors/kafka/records.js";
import { UnitWrites, type SinkSession, type SourcePosition, type UnitCommit, type UnitMessage } from "../../connectors/kafka/sink.js";
import type { RecordInFlight, StageUnit, StreamParts, StreamWritten, UnitStream } from "./unit.js";
import { unitCommitted } from "../../monitoring/stage-metrics.js";
import { changelogTopicOf, keyedOperatorsOf, repartitionTopicOf, topicPartition } from "../../core/plan/stream.js";
import { LINEAGE_HEADER, batchIdOf, formatLineage, type BatchLineage } from "../../core/plan/lineage.js";
import { INPUTS_HEADER, formatInputs, type OutputInputs } from "../../core/plan/input-summary.js";

/** A Buffer of `bytes` (a Buffer that crossed threads arrives as a plain Uint8Array), or `v` as it is. */
function asBuffer<T>(v: T | Uint8Array): T | Buffer {
  return v instanceof Uint8Array && !Buffer.isBuffer(v) ? Buffer.from(v.buffer, v.byteOffset, v.byteLength) : v;
}

/** Records between the chain's yields while a part of the unit goes out ahead (`StreamCommit.yieldDue`). */
const YIELD_EVERY = 200;

/** The messages one streaming unit writes, and the source record now travelling through the chain. */
export class StreamCommit implements UnitStream {
  private readonly messages: UnitMessage[] = [];
  /** The source record in the chain (its key, headers and timestamp pass through); null outside a source stage ... */
  current: BatchRecord | null = null;
  /** ... and the index of its slice (-1 outside a source stage, and after the slices ran out). */
  currentSlice = -1;
  /** The unit's batch id when lineage is on (null: off). */
  readonly batch: string | null;
  readonly lineageInputs: boolean;
  /**
   * Whether an output's lineage names the source record in flight: only in a source stage without
   * keyed operators. A window or an aggregate fires on some later record (or a timer), which is not
   * where its output came from, and past a stage boundary the record in flight is a repartition
   * record: there the header names the batch alone, whose line lists the ranges it read.
   */
  private readonly traceable: boolean;
  /** The inputs of the keyed output in flight, set by the keyed operator that emits it (null: none). */
  inputs: OutputInputs | null = null;
  /** Records written with a lineage header: the unit writes its batch line only when there are any. */
  private lineaged = 0;
  /**
   * Per slice, the first offset of the records the unit runs again for their counts only (an
   * earlier attempt committed them, but its result never reached the workflow: a local activity
   * whose workflow task was lost). Records from here up to the slice's `skipBelow` run through
   * the chain; what they write to Kafka is dropped (it is committed), user and print sinks are not
   * called (they were), and their inline edge outputs go on (the next stage's markers decide).
   * Empty: no record is run again (a stage with keyed operators: state must not see a record twice).
   */
  recountFrom: number[] = [];
  /** True while the record in flight is one run again for its counts only (see `recountFrom`). */
  recounting = false;
  /** The unit's writes against its markers, once `begin` read them (null: collected for the commit, or on a stage thread). */
  private writes: UnitWrites | null = null;
  /** Records through the chain since it last yielded to a part going out (`yieldDue`). */
  private sinceYield = 0;
  /** On a stage thread: where parts of the messages go while the chain runs (null: all with the result). */
  private parts: StreamParts | null = null;
  /** Messages handed over as parts, and how many parts. */
  private handed = 0;
  private partsHanded = 0;

  constructor(
    private readonly unit: StageUnit,
    readonly stream: StreamUnit,
  ) {
    // The first merged batch's sequence number names the unit; a timer unit (no slices) is named by its time.
    this.lineageInputs = stream.lineageInputs === true;
    this.batch = stream.lineageTopic ? batchIdOf(unit.stage.id, unit.input.shard, stream.slices[0]?.seq ?? `t${stream.processingTime ?? 0}`) : null;
    this.traceable = unit.stage.source && keyedOperatorsOf(unit.stage).length === 0;
  }

  /** Topics this streaming stage can write: its Kafka sinks' and the dead-letter topic. */
  outputTopics(): string[] {
    const topics = new Set<string>();
    for (const id of this.unit.stage.operators) {
      const sink = this.unit.node(id).sink;
      if (sink?.kind === "kafka") topics.add(sink.topic);
    }
    topics.add(this.stream.deadLetterTopic);
    if (this.stream.lineageTopic) topics.add(this.stream.lineageTopic);
    const { plan } = this.unit.compiled;
    for (const edge of plan.edges)
      if (edge.keyed && edge.fromStage === this.unit.stage.id) topics.add(repartitionTopicOf(plan.pipeline, this.unit.input.jobId, edge.toOperator));
    for (const uid of keyedOperatorsOf(this.unit.stage)) topics.add(changelogTopicOf(plan.pipeline, this.unit.input.jobId, uid));
    return [...topics];
  }

  inFlight(): RecordInFlight {
    return { current: this.current, slice: this.currentSlice, recounting: this.recounting };
  }

  resumeAt(record: RecordInFlight): void {
    this.current = record.current as BatchRecord | null;
    this.currentSlice = record.slice;
    this.recounting = record.recounting;
  }

  /** The key of the source record in flight, as bytes or text (null when there is none). */
  sourceKey(): string | Buffer | null {
    const source = this.current;
    if (source?.key === undefined || source.key === null) return null;
    return source.keyBase64 ? Buffer.from(source.key, "base64") : source.key;
  }

  /** The origin (`topic:partition`) of the source record in flight, or null outside a source stage. */
  sourceOrigin(): string | null {
    const slice = this.stream.slices[this.currentSlice];
    return this.current && slice ? topicPartition(slice.topic, slice.partition) : null;
  }

  /** The source partition (`topic:partition`) and offset of the source record in flight, if any. */
  sourceAt(): [string, number] | null {
    const origin = this.sourceOrigin();
    return origin === null ? null : [origin, this.current!.offset];
  }

  /** Where the source record in flight came from (`topic[partition]@offset`), if any. */
  sourcePosition(): string | null {
    const slice = this.stream.slices[this.currentSlice];
    return this.current && slice ? positionOf(slice.topic, slice.partition, this.current.offset) : null;
  }

  /** The source record an output made now comes from (null: none single, see `traceable`, or inside a `mapBatch` call). */
  recordSource(): string | null {
    return this.traceable && !this.unit.lineage?.batching ? this.sourcePosition() : null;
  }

  /** `headers` with the `sage-lineage` header of the record in flight added (as given when lineage is off). */
  withLineage(headers: Record<string, string>): Record<string, string>;
  withLineage(headers: Record<string, string> | undefined): Record<string, string> | undefined;
  withLineage(headers: Record<string, string> | undefined): Record<string, string> | undefined {
    if (this.batch === null) return headers;
    if (!this.recounting) this.lineaged++;
    const value = formatLineage({ source: this.recordSource(), batch: this.batch });
    const lineage: Record<string, string> = { [LINEAGE_HEADER]: value };
    if (this.inputs) lineage[INPUTS_HEADER] = formatInputs(this.inputs);
    return headers ? { ...headers, ...lineage } : lineage;
  }

  /** The unit's batch line: who ran it (the run and attempt are the activity's own), over which source ranges. */
  private batchLine(): BatchLineage | null {
    const execution = this.unit.host.execution;
    if (this.batch === null || !execution) return null;
    return {
      batch: this.batch,
      stage: this.unit.stage.id,
      ...execution,
      slices: this.stream.slices.map((s) => `${positionOf(s.topic, s.partition, s.from)}-${s.to}`),
      at: new Date().toISOString(),
      ...(this.unit.lineage && this.unit.lineage.calls.length > 0 ? { llm: this.unit.lineage.calls } : {}),
    };
  }

  /** What the unit wrote and did not hand over as parts, for the main thread to commit (the chain ran on a stage thread). */
  written(): StreamWritten {
    return { messages: this.messages.slice(this.handed), parts: this.partsHanded, lineaged: this.lineaged, calls: this.unit.lineage?.calls ?? [] };
  }

  /** On a stage thread: hands what the chain writes to the main thread in parts while it runs. */
  handParts(parts: StreamParts): void {
    this.parts = parts;
  }

  /** Takes messages a stage thread's run of this unit's chain wrote (a part, or the rest), to commit them with this unit. */
  adoptMessages(messages: readonly UnitMessage[]): void {
    for (const m of messages) {
      m.message.key = asBuffer(m.message.key);
      m.message.value = asBuffer(m.message.value);
      this.add(m);
    }
  }

  /** Takes the rest of what a stage thread's run of this unit's chain wrote (after its parts), to commit it with this unit. */
  adopt(written: StreamWritten): void {
    this.adoptMessages(written.messages);
    this.lineaged += written.lineaged;
    for (const call of written.calls) this.unit.lineage?.calls.push(call);
  }

  /**
   * Opens the unit's writes in `session` before its chain runs: with the markers read, what the
   * chain writes goes ahead in parts while it runs (`UnitWrites`), not all at the commit.
   */
  async begin(session: SinkSession): Promise<void> {
    this.writes = await UnitWrites.open(session, this.stream.slices, this.unit.stage.source, this.unit.logger);
  }

  /** Adds a message to the unit's transaction (dropped while recounting: an earlier attempt committed it). */
  write(topic: string, message: OutgoingMessage): void {
    if (this.recounting) return;
    this.add({ slice: this.currentSlice, topic, message });
  }

  private add(m: UnitMessage): void {
    this.messages.push(m);
    this.writes?.add(m);
    if (this.parts && this.messages.length - this.handed >= this.parts.part) {
      this.parts.take(this.messages.slice(this.handed));
      this.handed = this.messages.length;
      this.partsHanded++;
    }
  }

  /**
   * Called per record: true every `YIELD_EVERY` records while a part sent ahead is going out. Its
   * send moves on only when the chain yields (each step, from its encoding to the broker's reply, is
   * a turn of the event loop), so the broker works on the part while the chain runs.
   */
  yieldDue(): boolean {
    if (!this.writes?.sending() || ++this.sinceYield < YIELD_EVERY) return false;
    this.sinceYield = 0;
    return true;
  }

  /**
   * Commits the unit's messages with the markers (and `extra`; `note` their metadata) in the
   * session `begin` opened, skipping what an earlier attempt committed; metrics count what was
   * committed.
   */
  async commit(extra: SourcePosition[] = [], note?: string): Promise<UnitCommit> {
    const writes = this.writes;
    if (!writes) throw new InternalError(`stage ${this.unit.stage.id} (shard ${this.unit.input.shard}) committed a streaming unit it never began`);
    const line = this.lineaged > 0 ? this.batchLine() : null;
    // Slice -1: skipped only when every slice was committed before, like any output of the whole unit.
    if (line) this.add({ slice: -1, topic: this.stream.lineageTopic!, message: { key: line.batch, value: JSON.stringify(line) } });
    const outcome = await writes.commit(extra, note);
    if (outcome === "committed") unitCommitted(this.unit.input, this.messages, this.stream.deadLetterTopic);
    return outcome;
  }
}
