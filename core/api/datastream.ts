/**
 * The DataStream API (SAGE Core "DataStream API"): a typed, fluent handle on one output of one
 * operator. Every call adds a node to the logical graph; nothing runs here.
 */
import type { GraphBuilder, OperatorOptions } from "../plan/builder.js";
import type { SinkDescriptor } from "./connectors.js";
import { PrintSink } from "./connectors.js";
import type { OutputTag } from "./context.js";
import type { FilterFn, FlatMapFn, MapFn, ProcessFn, SinkFn } from "./functions.js";

/** The end of a stream: returned by `sink`, carries the sink's id. */
export interface SinkHandle {
  readonly operatorId: string;
}

function isSinkDescriptor(value: unknown): value is SinkDescriptor<unknown> {
  return typeof value === "object" && value !== null && "spec" in value && typeof value.spec === "object";
}

/** A stream of records of type `T`. */
export class DataStream<T> {
  /** @internal */
  constructor(
    protected readonly builder: GraphBuilder,
    /** Id of the operator whose output this stream is. */
    readonly operatorId: string,
    /** Which output of that operator (null = main). */
    readonly tag: string | null = null,
  ) {}

  private next<U>(kind: "map" | "flatMap" | "filter", fn: unknown, options: OperatorOptions): DataStream<U> {
    const id = this.builder.add({ kind, inputs: [{ from: this.operatorId, tag: this.tag }], fn, options });
    return new DataStream<U>(this.builder, id);
  }

  /** One output record per input record. */
  map<U>(fn: MapFn<T, U>, options: OperatorOptions = {}): DataStream<U> {
    return this.next<U>("map", fn, options);
  }

  /** Zero or more output records per input record. */
  flatMap<U>(fn: FlatMapFn<T, U>, options: OperatorOptions = {}): DataStream<U> {
    return this.next<U>("flatMap", fn, options);
  }

  /** Keeps the records for which `fn` returns true. */
  filter(fn: FilterFn<T>, options: OperatorOptions = {}): DataStream<T> {
    return this.next<T>("filter", fn, options);
  }

  /** Full control per record: emit to the main output or to side outputs (`ctx.output(tag, v)`). */
  process<U>(fn: ProcessFn<T, U>, options: OperatorOptions = {}): ProcessedStream<U> {
    const id = this.builder.add({ kind: "process", inputs: [{ from: this.operatorId, tag: this.tag }], fn, options });
    return new ProcessedStream<U>(this.builder, id);
  }

  /** Ends the stream in a sink: a built-in descriptor (`FileSink.jsonl(...)`) or a user sink. */
  sink(target: SinkDescriptor<T> | SinkFn<T>, options: OperatorOptions = {}): SinkHandle {
    const input = [{ from: this.operatorId, tag: this.tag }];
    const id = isSinkDescriptor(target)
      ? this.builder.add({ kind: "sink", inputs: input, fn: undefined, options, sink: target.spec })
      : this.builder.add({ kind: "sink", inputs: input, fn: target, options, sink: { kind: "function" } });
    return { operatorId: id };
  }

  /** Shorthand for `sink(PrintSink.stdout())`. */
  print(options: OperatorOptions & { prefix?: string } = {}): SinkHandle {
    const { prefix, ...rest } = options;
    return this.sink(PrintSink.stdout<T>(prefix === undefined ? {} : { prefix }), rest);
  }
}

/** The result of `process`: the main output plus typed side outputs. */
export class ProcessedStream<T> extends DataStream<T> {
  /** The records this operator sent to `tag` with `ctx.output(tag, value)`. */
  getSideOutput<X>(tag: OutputTag<X>): DataStream<X> {
    return new DataStream<X>(this.builder, this.operatorId, tag.id);
  }
}
