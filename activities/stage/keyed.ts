/**
 * The event-time and keyed operators of a stage run: a timestamp assigner sets each record's event
 * time; a keyBy wraps the record with its encoded key and key group for the keyed edge; a keyed
 * operator runs the keyed-state engine over its key-group range, one record at a time, with the
 * state changes and emissions of a record kept only when the record succeeds. With lineage on, the
 * keyed operator learns each record's source position and hands each output's inputs to the sinks.
 */
import type { RecordContext } from "../../core/api/context.js";
import type { TimestampAssigner } from "../../core/api/time.js";
import { InternalError, NonRetryableError } from "../../core/errors.js";
import type { TimeDomain } from "../../core/api/windows.js";
import { encodeKey, keyGroupOf, KeyEncodingError, type KeyedRecord } from "../../core/plan/key-groups.js";
import { DEFAULT_KEY_GROUPS, type LogicalNode } from "../../core/plan/logical.js";
import type { KeyedOperator, KeyedOutput } from "../state/keyed-operator.js";
import type { InputLineage } from "../state/input-lineage.js";
import type { EmittedInputs } from "../../core/plan/input-summary.js";
import type { StateBackend } from "../state/backend.js";
import type { Call, RecordInvoker, Then } from "./invoker.js";
import { pushAll, type Push } from "./push.js";
import type { StageUnit } from "./unit.js";

/** What the keyed operators need from the operator chain (a part of `OperatorWiring`). */
export interface KeyedWiring {
  readonly unit: StageUnit;
  readonly invoker: RecordInvoker;
  /** The output of `node` to what reads its `tag` (null: the main output). */
  output(node: LogicalNode, tag: string | null): Push;
}

/** The output of a clock advance with no timer due: nothing may be emitted there. */
const refuse = (): never => {
  throw new InternalError("a keyed operator emitted while its clock advanced with no timer due");
};
const NO_OUTPUT: KeyedOutput = { emit: refuse, side: refuse };

/** An emission of a keyed operator, held until its record succeeds: [tag (null: main), value, event time, its inputs (lineage)]. */
type Emission = [string | null, unknown, number | undefined, EmittedInputs | undefined];

/** A timestamp assigner: sets the record's event time, or fails the record when it is not a finite number. */
export function timestampsPush(w: KeyedWiring, node: LogicalNode, assigner: TimestampAssigner<unknown> | undefined): Push {
  const emit = w.output(node, null);
  const unit = w.unit;
  const ctx = unit.recordContext(node, 1);
  const call: Call = (v) => {
    const ts = assigner ? assigner(v, unit.eventTime) : unit.eventTime;
    if (typeof ts !== "number" || !Number.isFinite(ts)) {
      throw new NonRetryableError(
        `timestamp assigner "${node.name}" returned ${typeof ts === "number" ? String(ts) : typeof ts}; an event time must be a finite number of ms since the epoch`,
      );
    }
    return ts;
  };
  const then: Then = (ts, v) => {
    unit.eventTime = ts as number;
    unit.assignedTime = ts as number;
    return emit(v);
  };
  return (v) => w.invoker.invoke(node, ctx, v, call, then);
}

/** A keyBy: the record leaves wrapped with its encoded key, key group and event time. */
export function keyByPush(w: KeyedWiring, node: LogicalNode, keyFn: (v: unknown) => unknown): Push {
  const emit = w.output(node, null);
  const unit = w.unit;
  const keyGroups = unit.compiled.plan.keyGroups ?? DEFAULT_KEY_GROUPS;
  const ctx = unit.recordContext(node, 1);
  // Source-partitioned and read in this stage: the key must be the record's Kafka key, or its state would sit in the wrong partition.
  const local = node.sourcePartitioned && (unit.stage.keyedLocal ?? []).some((id) => unit.node(id).inputs.some((i) => i.from === node.id));
  const call: Call = (v) => {
    let key: unknown;
    let encoded: string;
    try {
      key = keyFn(v);
      encoded = encodeKey(key);
    } catch (err) {
      if (err instanceof KeyEncodingError) throw new NonRetryableError(`keyBy "${node.name}": ${err.message}`);
      throw err;
    }
    if (local) checkSourceKey(node, unit, typeof key === "string" ? key : encoded);
    return encoded;
  };
  const then: Then = (k, v) => {
    const key = k as string;
    const record: KeyedRecord = { k: key, g: keyGroupOf(key, keyGroups), v, ...(unit.eventTime !== undefined ? { t: unit.eventTime } : {}) };
    return emit(record);
  };
  return (v) => w.invoker.invoke(node, ctx, v, call, then);
}

/** Fails the record (to the dead letters) when its Kafka key is not `expected`, the key a source-partitioned keyBy gave it. */
function checkSourceKey(node: LogicalNode, unit: StageUnit, expected: string): void {
  const raw = unit.stream?.sourceKey() ?? null;
  const actual = raw === null ? null : typeof raw === "string" ? raw : raw.toString("utf8");
  if (actual === expected) return;
  throw new NonRetryableError(
    `keyBy "${node.name}" is source-partitioned, but the record's key ${JSON.stringify(expected)} is not its Kafka key ` +
      `(${actual === null ? "it has none" : JSON.stringify(actual)}): its state would live in another partition's workflow`,
  );
}

/** A keyed operator of one stage run: its pushes (one per input) and its clocks. */
export class KeyedRun {
  private watermark = -Infinity;
  private processingTime = -Infinity;
  private readonly emits = new Map<string | null, Push>();
  private readonly ctx: RecordContext;

  constructor(
    private readonly w: KeyedWiring,
    readonly node: LogicalNode,
    readonly operator: KeyedOperator,
    readonly backend: StateBackend,
    private readonly lineage: InputLineage | null = null,
  ) {
    this.ctx = w.unit.recordContext(node, 1);
  }

  /** The watermark the operator has reached. */
  currentWatermark(): number {
    return this.watermark;
  }

  /** The push of input `side`: a keyed record into the operator, its emissions on once it succeeded. */
  push(side: number): Push {
    const { operator } = this;
    const call: Call = (rec, ctx) => {
      const r = rec as KeyedRecord;
      if (this.lineage) this.lineage.current = this.sourceOf(r);
      return this.inRecord(ctx, (out) => operator.element({ key: r.k, keyGroup: r.g, value: r.v, timestamp: r.t, side }, ctx, out));
    };
    return (rec) => this.w.invoker.invoke(this.node, this.ctx, rec, call, this.forward);
  }

  /** Advances event time to `watermark` (no-op unless it moves forward), firing what is due. */
  advanceWatermark(watermark: number): void | Promise<void> {
    if (watermark <= this.watermark) return;
    this.watermark = watermark;
    // Most records move the watermark without a timer falling due: the operator only notes it, with no record around it.
    if (!this.due("event", watermark)) return void this.operator.advanceWatermark(watermark, this.ctx, NO_OUTPUT);
    return this.clock({ watermark }, (ctx, out) => this.operator.advanceWatermark(watermark, ctx, out));
  }

  /** Advances processing time to `now`, firing what is due. */
  advanceProcessingTime(now: number): void | Promise<void> {
    if (now <= this.processingTime) return;
    this.processingTime = now;
    if (!this.due("processing", now)) return void this.operator.advanceProcessingTime(now, this.ctx, NO_OUTPUT);
    return this.clock({ processingTime: now }, (ctx, out) => this.operator.advanceProcessingTime(now, ctx, out));
  }

  /** True when a timer of `domain` is due at `time` (windows are timers too). */
  private due(domain: TimeDomain, time: number): boolean {
    const next = this.backend.nextTimer(domain);
    return next !== null && next <= time;
  }

  /**
   * Where a record came from: a repartition record names its source partition and offset; in a
   * source stage (a source-partitioned keyBy), the source record in flight is the one.
   */
  private sourceOf(r: KeyedRecord): [string, number] | null {
    if (r.o !== undefined) return r.p === undefined ? null : [r.o, r.p];
    return this.w.unit.stage.source ? (this.w.unit.stream?.sourceAt() ?? null) : null;
  }

  /** Fires timers as one record: a failing window or timer function dead-letters `what` with the reason, and the unit goes on. */
  private clock(what: object, fire: (ctx: RecordContext, out: KeyedOutput) => unknown): void | Promise<void> {
    const call: Call = (_v, ctx) => {
      if (this.lineage) this.lineage.current = null;
      return this.inRecord(ctx, (out) => fire(ctx, out));
    };
    return this.w.invoker.invoke(this.node, this.ctx, what, call, this.forward);
  }

  /** Runs `work` as one record of the state backend: its changes and emissions kept only if it succeeds. */
  private inRecord(_ctx: RecordContext, work: (out: KeyedOutput) => unknown): Emission[] | Promise<Emission[]> {
    const buffered: Emission[] = [];
    const out: KeyedOutput = {
      emit: (value, timestamp, inputs) => void buffered.push([null, value, timestamp, inputs]),
      side: (tag, value, inputs) => void buffered.push([tag, value, undefined, inputs]),
    };
    this.backend.beginRecord();
    let done: unknown;
    try {
      done = work(out);
    } catch (err) {
      this.backend.abortRecord();
      throw err;
    }
    if (done instanceof Promise) {
      return done.then(
        () => {
          this.backend.commitRecord();
          return buffered;
        },
        (err: unknown) => {
          this.backend.abortRecord();
          throw err;
        },
      );
    }
    this.backend.commitRecord();
    return buffered;
  }

  /** Sends a succeeded record's emissions on, each with its event time (and with lineage, its inputs for the sinks). */
  private readonly forward: Then = (emissions) =>
    pushAll(emissions as Emission[], (e) => {
      const [tag, value, ts, inputs] = e as Emission;
      this.w.unit.eventTime = ts;
      let push = this.emits.get(tag);
      if (!push) this.emits.set(tag, (push = this.w.output(this.node, tag)));
      const stream = this.lineage ? this.w.unit.stream : null;
      if (!stream) return push(value);
      stream.inputs = inputs ? { ...inputs, operator: this.node.id } : null;
      const done = push(value);
      if (!done) return void (stream.inputs = null);
      return done.finally(() => {
        stream.inputs = null;
      });
    });
}
