/**
 * The DataStream API (SAGE Core "DataStream API"): a typed, fluent handle on one output of one
 * operator. Every call adds a node to the logical graph; nothing runs here.
 */
import type { GraphBuilder, OperatorOptions } from "../plan/builder.js";
import type { SinkDescriptor } from "./connectors.js";
import { PrintSink } from "./connectors.js";
import type { OutputTag } from "./context.js";
import type {
  CoFlatMapFunctionLike,
  CoMapFunctionLike,
  FilterFn,
  FlatMapFn,
  MapBatchFn,
  MapFn,
  MaybePromise,
  ProcessFn,
  RouteFn,
  SinkFn,
} from "./functions.js";
import {
  ChatClassifier,
  EmbedFunction,
  EmbeddingClassifier,
  GenerateFunction,
  PromptFunction,
  RetrieveFunction,
  type ChatMessage,
  type Embedded,
  type Generated,
  type GenerateOptions,
  type Labelled,
  type Prompted,
  type Retrieved,
} from "./llm.js";
import type { StringOrParam } from "./params.js";
import type { RecordContext } from "./context.js";
import { PipelineDefinitionError } from "../errors.js";
import { OTHERWISE_TAG } from "../plan/logical.js";
import type { WatermarkStrategy } from "./time.js";

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

  /**
   * One output per input, computed a micro-batch at a time: `fn` gets up to `batchSize` records
   * (default 64) and returns their results in order. Fuses like `map`; the LLM operators use it.
   */
  mapBatch<U>(fn: MapBatchFn<T, U>, options: OperatorOptions & { batchSize?: number } = {}): DataStream<U> {
    const { batchSize, ...rest } = options;
    const id = this.builder.add({ kind: "mapBatch", inputs: [{ from: this.operatorId, tag: this.tag }], fn, options: rest, batchSize: batchSize ?? 64 });
    return new DataStream<U>(this.builder, id);
  }

  /** Adds `embedding` to each record: one request to the embedding model per micro-batch. */
  embed(options: OperatorOptions & { text: (value: T) => string; model?: string; batchSize?: number }): DataStream<Embedded<T>> {
    const { text, model, ...rest } = options;
    return this.mapBatch<Embedded<T>>(new EmbedFunction<T>(text, model), rest);
  }

  /** Replaces each record's `embedding` by `hits`: the top `k` chunks of the vector index at `index`. */
  retrieve(options: OperatorOptions & { index: StringOrParam; k?: number }): DataStream<Retrieved<T & { embedding: number[] }>> {
    const { index, k, ...rest } = options;
    return this.map(new RetrieveFunction<T & { embedding: number[] }>(index, k ?? 3), rest);
  }

  /** Adds chat `messages` built from templates with `{{field.path}}` placeholders (or a function). */
  prompt(user: string | ((value: T) => string), options: OperatorOptions & { system?: string } = {}): DataStream<Prompted<T>> {
    const { system, ...rest } = options;
    return this.map(new PromptFunction<T>(user, system), rest);
  }

  /**
   * Adds the chat model's `answer` to each record (and `json`, parsed, when a JSON schema is given).
   * Decoding: `maxTokens` (default 128), `temperature` (0), `stop`, the penalties.
   */
  generate<J = unknown>(options: OperatorOptions & Partial<GenerateOptions> = {}): DataStream<Generated<T, J>> {
    const { maxTokens, temperature, stop, frequencyPenalty, presencePenalty, repeatPenalty, schema, model, ...rest } = options;
    const decoding = { stop, frequencyPenalty, presencePenalty, repeatPenalty, schema, model };
    const fn = new GenerateFunction<T & { messages: ChatMessage[] }>({ maxTokens: maxTokens ?? 128, temperature: temperature ?? 0, ...decoding });
    return this.map(fn as never, rest);
  }

  /**
   * Adds a `label` (and `score`) to each record: by embedding similarity to labelled `examples`
   * (default; one embedding request per batch), or with `by: "chat"` by a chat model under a JSON schema.
   */
  classify<L extends string>(
    options: OperatorOptions & { text: (value: T) => string; model?: string } & (
        | { by?: "embedding"; examples: Readonly<Record<L, readonly string[]>>; k?: number; batchSize?: number }
        | { by: "chat"; labels: readonly L[]; instructions?: string }
      ),
  ): DataStream<Labelled<T, L>> {
    if (options.by === "chat") {
      const { text, model, labels, instructions, by: _by, ...rest } = options;
      return this.map(new ChatClassifier<T, L>(text, labels, instructions ?? "Classify the message.", model), rest);
    }
    const { text, model, examples, k, by: _by, ...rest } = options;
    if (Object.keys(examples).length < 2)
      throw new PipelineDefinitionError(`classify${rest.name ? ` "${rest.name}"` : ""} needs examples for at least two labels`);
    return this.mapBatch(new EmbeddingClassifier<T, L>(text, examples, k ?? 3, model), rest);
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
      ? this.builder.add({ kind: "sink", inputs: input, fn: target.fn, options, sink: target.spec })
      : this.builder.add({ kind: "sink", inputs: input, fn: target, options, sink: { kind: "function" } });
    return { operatorId: id };
  }

  /** One stream of this stream's records and those of `others` (same type); each keeps its own order. */
  union(...others: DataStream<T>[]): DataStream<T> {
    return this.unionNamed({}, ...others);
  }

  /** `union` with operator options (name, parallelism). */
  unionNamed(options: OperatorOptions, ...others: DataStream<T>[]): DataStream<T> {
    const inputs = [this, ...others].map((s) => ({ from: s.operatorId, tag: s.tag }));
    const id = this.builder.add({ kind: "union", inputs, fn: undefined, options });
    return new DataStream<T>(this.builder, id);
  }

  /**
   * Every parallel instance of each operator reading the returned stream gets every record, as in
   * Flink: a reader of parallelism 3 sees each record three times (a reader of parallelism 1, once).
   * To give each record once to several operators, let them all read one stream (fan-out).
   */
  broadcast(options: OperatorOptions = {}): DataStream<T> {
    const id = this.builder.add({ kind: "broadcast", inputs: [{ from: this.operatorId, tag: this.tag }], fn: undefined, options });
    return new DataStream<T>(this.builder, id);
  }

  /**
   * Sends each record to the one branch its label names (SAGE Core `.route([...], name="intent-router")`)
   * and returns the union of the branch outputs. Unmatched labels go to `otherwise`, else to the dead letters.
   */
  route<U>(
    branches: ReadonlyArray<readonly [string, (s: DataStream<T>) => DataStream<U>]>,
    options: OperatorOptions & { by: RouteFn<T>; otherwise?: (s: DataStream<T>) => DataStream<U> },
  ): DataStream<U> {
    const { by, otherwise, ...opts } = options;
    const labels = branches.map(([label]) => label);
    if (labels.length === 0) throw new PipelineDefinitionError(`route${opts.name ? ` "${opts.name}"` : ""} needs at least one branch`);
    if (new Set(labels).size !== labels.length)
      throw new PipelineDefinitionError(`route${opts.name ? ` "${opts.name}"` : ""} has a label twice: ${labels.join(", ")}`);
    const router = this.builder.add({
      kind: "route",
      inputs: [{ from: this.operatorId, tag: this.tag }],
      fn: by,
      options: opts,
      route: { labels, otherwise: otherwise !== undefined },
    });
    const outs = branches.map(([label, build]) => build(new DataStream<T>(this.builder, router, label)));
    if (otherwise) outs.push(otherwise(new DataStream<T>(this.builder, router, OTHERWISE_TAG)));
    const [first, ...rest] = outs;
    return first!.unionNamed({ name: `${this.builder.nameOf(router)}-union` }, ...rest);
  }

  /**
   * Gives each record its event time and the stream its watermarks (SAGE Core
   * `WatermarkStrategy.for_bounded_out_of_orderness`). Put it in the source's stage, before keyBy.
   */
  assignTimestampsAndWatermarks(strategy: WatermarkStrategy<T>, options: OperatorOptions = {}): DataStream<T> {
    const id = this.builder.add({
      kind: "timestamps",
      inputs: [{ from: this.operatorId, tag: this.tag }],
      fn: strategy.assigner,
      options,
      watermark: strategy.spec,
    });
    return new DataStream<T>(this.builder, id);
  }

  /** Joins this stream with `other` under one function with a method per input (SAGE Core Connected Streams). */
  connect<B>(other: DataStream<B>): ConnectedStreams<T, B> {
    return new ConnectedStreams<T, B>(this.builder, this, other);
  }

  /** Closes a feedback loop: this stream's records re-enter `feedback` one round later. */
  fillFeedback(feedback: FeedbackStream<T>): void {
    this.builder.addInput(feedback.operatorId, { from: this.operatorId, tag: this.tag, feedback: true });
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

/** Two streams under one function (`coMap`, `coFlatMap`, or an object with `map1`/`map2`). */
export class ConnectedStreams<A, B> {
  /** @internal */
  constructor(
    private readonly builder: GraphBuilder,
    private readonly first: DataStream<A>,
    private readonly second: DataStream<B>,
  ) {}

  private add<R>(kind: "coMap" | "coFlatMap", fn: unknown, options: OperatorOptions): DataStream<R> {
    const inputs = [this.first, this.second].map((s) => ({ from: s.operatorId, tag: s.tag }));
    return new DataStream<R>(this.builder, this.builder.add({ kind, inputs, fn, options }));
  }

  /** One output per input record: `f1` for the first stream, `f2` for the second. */
  coMap<R>(
    f1: (value: A, ctx: RecordContext) => MaybePromise<R>,
    f2: (value: B, ctx: RecordContext) => MaybePromise<R>,
    options: OperatorOptions = {},
  ): DataStream<R> {
    return this.add<R>("coMap", { map1: f1, map2: f2 }, options);
  }

  /** Zero or more outputs per input record. */
  coFlatMap<R>(
    f1: (value: A, ctx: RecordContext) => MaybePromise<Iterable<R>>,
    f2: (value: B, ctx: RecordContext) => MaybePromise<Iterable<R>>,
    options: OperatorOptions = {},
  ): DataStream<R> {
    return this.add<R>("coFlatMap", { flatMap1: f1, flatMap2: f2 }, options);
  }

  /** A co-map object (`class X extends CoMapFunction<A, B, R>`) with the open/close lifecycle. */
  map<R>(fn: CoMapFunctionLike<A, B, R>, options: OperatorOptions = {}): DataStream<R> {
    return this.add<R>("coMap", fn, options);
  }

  /** A co-flat-map object. */
  flatMap<R>(fn: CoFlatMapFunctionLike<A, B, R>, options: OperatorOptions = {}): DataStream<R> {
    return this.add<R>("coFlatMap", fn, options);
  }
}

/** The open end of a feedback loop (`env.feedback<T>(name, { maxRounds })`): a stream filled later. */
export class FeedbackStream<T> extends DataStream<T> {}
