/**
 * Keyed streams (SAGE Core `key_by`, `window`, `aggregate`; Flink's `KeyedStream`,
 * `WindowedStream`, joins): every call adds a stateful operator to the logical graph, reading the
 * keyBy before it through a repartition by key group.
 */
import type { GraphBuilder, OperatorOptions } from "../plan/builder.js";
import type { KeyedSpec } from "../plan/logical.js";
import type { OutputTag } from "./context.js";
import { DataStream, ProcessedStream } from "./datastream.js";
import type { AggregateFunction, IntervalJoinFn, JoinFn, KeyedProcessFunction, ProcessWindowFn, ReduceFn, WindowResultFn } from "./state.js";
import { millisOf, type DurationLike } from "./time.js";
import type { WindowAssigner } from "./windows.js";
import { PipelineDefinitionError } from "../errors.js";

declare module "./datastream.js" {
  interface DataStream<T> {
    /** Partitions the stream by `key` (SAGE Core `key_by`): what reads it is stateful per key. */
    keyBy<K>(key: KeySelector<T, K>, options?: KeyByOptions): KeyedStream<T, K>;
    /** A window join with `other`: `a.join(b).where(ka).equalTo(kb).window(TumblingWindow.of(...)).apply(fn)`. */
    join<B>(other: DataStream<B>): JoinedStreams<T, B>;
  }
}

/** The graph builder and operator id of a stream (fields protected in `DataStream`). */
function partsOf(stream: DataStream<unknown>): { builder: GraphBuilder; operatorId: string; tag: string | null } {
  return { builder: (stream as unknown as { builder: GraphBuilder }).builder, operatorId: stream.operatorId, tag: stream.tag };
}

DataStream.prototype.keyBy = function keyBy<T, K>(this: DataStream<T>, key: KeySelector<T, K>, options: KeyByOptions = {}): KeyedStream<T, K> {
  const { builder, operatorId, tag } = partsOf(this as DataStream<unknown>);
  const { sourcePartitioned, ...rest } = options;
  const id = builder.add({ kind: "keyBy", inputs: [{ from: operatorId, tag }], fn: key, options: rest, ...(sourcePartitioned ? { sourcePartitioned } : {}) });
  return new KeyedStream<T, K>(builder, id);
};

DataStream.prototype.join = function join<T, B>(this: DataStream<T>, other: DataStream<B>): JoinedStreams<T, B> {
  return new JoinedStreams<T, B>(partsOf(this as DataStream<unknown>).builder, this, other);
};

/** Options of `keyBy`. */
export interface KeyByOptions extends OperatorOptions {
  /**
   * The records already arrive partitioned by this key, as Kafka Streams' `groupByKey` assumes:
   * each record's Kafka message key equals the key (a string key as it is, any other as its JSON).
   * Where the keyBy runs in a Kafka source's stage, its keyed operators then run in that stage on
   * the source partitions' records, with no repartition topic; a record whose Kafka key differs goes
   * to the dead letters. Elsewhere (a bounded source, an unfused chain) records are repartitioned as usual.
   */
  sourcePartitioned?: boolean;
}

/** Extracts the key of a record; the key must have a stable JSON encoding (no undefined, functions or NaN). */
export type KeySelector<T, K> = (value: T) => K;

/** A stream partitioned by key: each key's records go, in order, to one instance of what reads it. */
export class KeyedStream<T, K> {
  /** @internal */
  constructor(
    private readonly builder: GraphBuilder,
    /** Id of the keyBy node. */
    readonly operatorId: string,
  ) {}

  private keyed<O>(keyed: KeyedSpec, fn: unknown, options: OperatorOptions, extraFns?: Record<string, unknown>): ProcessedStream<O> {
    const id = this.builder.add({ kind: "keyed", inputs: [{ from: this.operatorId, tag: null }], fn, options, keyed, ...(extraFns ? { extraFns } : {}) });
    return new ProcessedStream<O>(this.builder, id);
  }

  /** A rolling reduce: emits the running value of the key for every record, in the source's order per key. */
  reduce(fn: ReduceFn<T>, options: OperatorOptions = {}): DataStream<T> {
    return this.keyed<T>({ op: "reduce" }, fn, options);
  }

  /** A rolling aggregate: emits `getResult` of the key's accumulator for every record. */
  aggregate<ACC, R>(fn: AggregateFunction<T, ACC, R>, options: OperatorOptions = {}): DataStream<R> {
    return this.keyed<R>({ op: "aggregate" }, fn, options);
  }

  /** Per record, with the key's state (`ctx.state`) and timers (`ctx.timers`); `onTimer` when one fires. */
  process<O>(fn: KeyedProcessFunction<K, T, O>, options: OperatorOptions = {}): ProcessedStream<O> {
    return this.keyed<O>({ op: "process" }, fn, options);
  }

  /** Cuts each key's records into windows. */
  window(assigner: WindowAssigner): WindowedStream<T, K> {
    return new WindowedStream<T, K>(this.builder, this.operatorId, assigner);
  }

  /** Pairs each record of this stream with the records of `other` of the same key within an interval of event time. */
  intervalJoin<B>(other: KeyedStream<B, K>): IntervalJoin<T, B, K> {
    return new IntervalJoin<T, B, K>(this.builder, this.operatorId, other.operatorId);
  }
}

/** A keyed stream cut into windows; ends in `aggregate`, `reduce` or `process`. */
export class WindowedStream<T, K> {
  private latenessMs = 0;
  private lateTag: string | null = null;

  /** @internal */
  constructor(
    private readonly builder: GraphBuilder,
    private readonly keyById: string,
    private readonly assigner: WindowAssigner,
  ) {}

  /** Keeps a fired window for `lateness` more: a record arriving meanwhile fires it again, updated. */
  allowedLateness(lateness: DurationLike): this {
    this.latenessMs = millisOf(lateness, "allowedLateness");
    return this;
  }

  /** Records too late for every window they belong to go to `tag` (read it with `getSideOutput(tag)`). */
  sideOutputLateData(tag: OutputTag<T>): this {
    this.lateTag = tag.id;
    return this;
  }

  private add<O>(apply: "reduce" | "aggregate" | "process", fn: unknown, resultFn: unknown, options: OperatorOptions): ProcessedStream<O> {
    const keyed: KeyedSpec = {
      op: "window",
      window: this.assigner.spec,
      apply,
      allowedLatenessMs: this.latenessMs,
      lateTag: this.lateTag,
      withResultFn: resultFn !== undefined,
    };
    const id = this.builder.add({
      kind: "keyed",
      inputs: [{ from: this.keyById, tag: null }],
      fn,
      options,
      keyed,
      ...(resultFn !== undefined ? { extraFns: { result: resultFn } } : {}),
    });
    // Checked once the builder has refused an operator without a uid or name, so the message can name it.
    if (this.assigner.spec.kind === "session" && apply === "aggregate" && typeof (fn as { merge?: unknown }).merge !== "function") {
      throw new PipelineDefinitionError(`window aggregate "${options.name ?? options.uid}": session windows merge, so the AggregateFunction needs merge()`);
    }
    return new ProcessedStream<O>(this.builder, id);
  }

  /** An incremental aggregate per window: emits `getResult`, or what `result(key, window, result)` makes of it. */
  aggregate<ACC, R, O = R>(
    fn: AggregateFunction<T, ACC, R>,
    result?: WindowResultFn<K, R, O> | OperatorOptions,
    options: OperatorOptions = {},
  ): ProcessedStream<O> {
    if (typeof result === "function") return this.add<O>("aggregate", fn, result, options);
    return this.add<O>("aggregate", fn, undefined, result ?? options);
  }

  /** An incremental reduce per window: emits the reduced value, or what `result(key, window, value)` makes of it. */
  reduce<O = T>(fn: ReduceFn<T>, result?: WindowResultFn<K, T, O> | OperatorOptions, options: OperatorOptions = {}): ProcessedStream<O> {
    if (typeof result === "function") return this.add<O>("reduce", fn, result, options);
    return this.add<O>("reduce", fn, undefined, result ?? options);
  }

  /** All records of the window at once, with the key and the window's bounds. */
  process<O>(fn: ProcessWindowFn<K, T, O>, options: OperatorOptions = {}): ProcessedStream<O> {
    return this.add<O>("process", fn, undefined, options);
  }
}

/** `a.join(b)`: name the keys with `where` and `equalTo`, then the window. */
export class JoinedStreams<A, B> {
  /** @internal */
  constructor(
    private readonly builder: GraphBuilder,
    private readonly left: DataStream<A>,
    private readonly right: DataStream<B>,
  ) {}

  /** The key of the left stream's records. */
  where<K>(leftKey: KeySelector<A, K>): { equalTo: (rightKey: KeySelector<B, K>) => { window: (assigner: WindowAssigner) => JoinWindow<A, B> } } {
    return {
      equalTo: (rightKey) => ({
        window: (assigner) => new JoinWindow<A, B>(this.builder, this.left.keyBy(leftKey).operatorId, this.right.keyBy(rightKey).operatorId, assigner),
      }),
    };
  }
}

/** A window join waiting for its function. */
export class JoinWindow<A, B> {
  /** @internal */
  constructor(
    private readonly builder: GraphBuilder,
    private readonly leftKeyBy: string,
    private readonly rightKeyBy: string,
    private readonly assigner: WindowAssigner,
  ) {}

  /** Calls `fn` for every pair of records with equal keys in the same window. */
  apply<O>(fn: JoinFn<A, B, O>, options: OperatorOptions = {}): DataStream<O> {
    const inputs = [this.leftKeyBy, this.rightKeyBy].map((from) => ({ from, tag: null }));
    const id = this.builder.add({ kind: "keyed", inputs, fn, options, keyed: { op: "windowJoin", window: this.assigner.spec } });
    return new DataStream<O>(this.builder, id);
  }
}

/** `a.keyBy(k).intervalJoin(b.keyBy(k))`: give the interval with `between`. */
export class IntervalJoin<A, B, K> {
  /** @internal */
  constructor(
    private readonly builder: GraphBuilder,
    private readonly leftKeyBy: string,
    private readonly rightKeyBy: string,
  ) {}

  /** Right records with `left.ts + lower <= right.ts <= left.ts + upper` pair with the left one. */
  between(lower: number, upper: number): { process: <O>(fn: IntervalJoinFn<A, B, O>, options?: OperatorOptions) => DataStream<O> } {
    return {
      process: <O>(fn: IntervalJoinFn<A, B, O>, options: OperatorOptions = {}): DataStream<O> => {
        void ({} as K);
        const inputs = [this.leftKeyBy, this.rightKeyBy].map((from) => ({ from, tag: null }));
        const id = this.builder.add({ kind: "keyed", inputs, fn, options, keyed: { op: "intervalJoin", lowerMs: lower, upperMs: upper } });
        // Checked once the operator has a name (the builder refuses one without a uid or name) for the message.
        const what = `interval join "${options.name ?? options.uid}": between(${String(lower)}, ${String(upper)})`;
        if (!Number.isInteger(lower) || !Number.isInteger(upper)) throw new PipelineDefinitionError(`${what}: the bounds must be whole numbers of ms`);
        if (lower > upper) throw new PipelineDefinitionError(`${what}: the lower bound is above the upper bound`);
        return new DataStream<O>(this.builder, id);
      },
    };
  }
}
