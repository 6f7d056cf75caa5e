/**
 * The Functions API (SAGE Core "Functions API"): every operator takes either a lambda or an object
 * with the operator's method, optionally with the `open`/`close` lifecycle. Abstract base classes
 * are offered for users who like to extend (`class Tagger extends MapFunction<In, Out>`).
 */
import type { FunctionContext, ProcessContext, RecordContext, SinkContext, SourceContext } from "./context.js";

/** A value or a promise of it. */
export type MaybePromise<T> = T | Promise<T>;

/** Optional lifecycle of every function object. */
export interface RichFunction {
  /** Called once per operator instance per worker process (per stage thread, where the stage runs on one), before the first record. */
  open?(ctx: FunctionContext): MaybePromise<void>;
  /** Called once when the worker shuts down. */
  close?(): MaybePromise<void>;
}

/** Object form of `map`. */
export interface MapFunctionLike<T, U> extends RichFunction {
  map(value: T, ctx: RecordContext): MaybePromise<U>;
}
/** Object form of `mapBatch`: one call per micro-batch, one result per input, in order. */
export interface MapBatchFunctionLike<T, U> extends RichFunction {
  mapBatch(values: T[], ctx: RecordContext): MaybePromise<U[]>;
}
/** Object form of `flatMap`. */
export interface FlatMapFunctionLike<T, U> extends RichFunction {
  flatMap(value: T, ctx: RecordContext): MaybePromise<Iterable<U>>;
}
/** Object form of `filter`. */
export interface FilterFunctionLike<T> extends RichFunction {
  filter(value: T, ctx: RecordContext): MaybePromise<boolean>;
}
/** Object form of `process`: emit any number of records to the main or side outputs. */
export interface ProcessFunctionLike<T, U> extends RichFunction {
  process(value: T, ctx: ProcessContext<U>): MaybePromise<void>;
}
/** A user sink: `invoke` per record; `finish` once per shard after its last record. */
export interface SinkFunction<T> extends RichFunction {
  invoke(value: T, ctx: SinkContext): MaybePromise<void>;
  finish?(ctx: SinkContext): MaybePromise<void>;
}
/**
 * A bounded user source: `splits` cuts the input into JSON-serializable split descriptors (the only
 * thing that enters workflow history); `read` yields the records of one split.
 */
export interface SourceFunction<T> extends RichFunction {
  splits?(ctx: SourceContext): MaybePromise<readonly SplitDescriptor[]>;
  read(split: SplitDescriptor, ctx: SourceContext): AsyncIterable<T> | Iterable<T>;
}

/** A JSON value describing one split of a bounded source. */
export type SplitDescriptor = null | boolean | number | string | SplitDescriptor[] | { [key: string]: SplitDescriptor };

/** `map` as lambda or object. */
export type MapFn<T, U> = ((value: T, ctx: RecordContext) => MaybePromise<U>) | MapFunctionLike<T, U>;
/** `mapBatch` as lambda or object. */
export type MapBatchFn<T, U> = ((values: T[], ctx: RecordContext) => MaybePromise<U[]>) | MapBatchFunctionLike<T, U>;
/** `flatMap` as lambda or object. */
export type FlatMapFn<T, U> = ((value: T, ctx: RecordContext) => MaybePromise<Iterable<U>>) | FlatMapFunctionLike<T, U>;
/** `filter` as lambda or object. */
export type FilterFn<T> = ((value: T, ctx: RecordContext) => MaybePromise<boolean>) | FilterFunctionLike<T>;
/** `process` as lambda or object. */
export type ProcessFn<T, U> = ((value: T, ctx: ProcessContext<U>) => MaybePromise<void>) | ProcessFunctionLike<T, U>;
/** A sink as lambda or object. */
export type SinkFn<T> = ((value: T, ctx: SinkContext) => MaybePromise<void>) | SinkFunction<T>;

/** Base class for `map` functions (SAGE Core `MapFunction`). */
export abstract class MapFunction<T, U> implements MapFunctionLike<T, U> {
  abstract map(value: T, ctx: RecordContext): MaybePromise<U>;
}
/** Base class for `flatMap` functions. */
export abstract class FlatMapFunction<T, U> implements FlatMapFunctionLike<T, U> {
  abstract flatMap(value: T, ctx: RecordContext): MaybePromise<Iterable<U>>;
}
/** Base class for `filter` functions. */
export abstract class FilterFunction<T> implements FilterFunctionLike<T> {
  abstract filter(value: T, ctx: RecordContext): MaybePromise<boolean>;
}
/** Base class for `process` functions. */
export abstract class ProcessFunction<T, U> implements ProcessFunctionLike<T, U> {
  abstract process(value: T, ctx: ProcessContext<U>): MaybePromise<void>;
}
/** Base class for user sinks. */
export abstract class RichSinkFunction<T> implements SinkFunction<T> {
  abstract invoke(value: T, ctx: SinkContext): MaybePromise<void>;
}
/** Base class for bounded user sources. */
export abstract class RichSourceFunction<T> implements SourceFunction<T> {
  abstract read(split: SplitDescriptor, ctx: SourceContext): AsyncIterable<T> | Iterable<T>;
}

/** Object form of `coMap` over connected streams: one method per input. */
export interface CoMapFunctionLike<A, B, R> extends RichFunction {
  map1(value: A, ctx: RecordContext): MaybePromise<R>;
  map2(value: B, ctx: RecordContext): MaybePromise<R>;
}
/** Object form of `coFlatMap` over connected streams. */
export interface CoFlatMapFunctionLike<A, B, R> extends RichFunction {
  flatMap1(value: A, ctx: RecordContext): MaybePromise<Iterable<R>>;
  flatMap2(value: B, ctx: RecordContext): MaybePromise<Iterable<R>>;
}
/** Base class for co-map functions (SAGE Core `MyCoMapFunction`). */
export abstract class CoMapFunction<A, B, R> implements CoMapFunctionLike<A, B, R> {
  abstract map1(value: A, ctx: RecordContext): MaybePromise<R>;
  abstract map2(value: B, ctx: RecordContext): MaybePromise<R>;
}
/** Base class for co-flat-map functions. */
export abstract class CoFlatMapFunction<A, B, R> implements CoFlatMapFunctionLike<A, B, R> {
  abstract flatMap1(value: A, ctx: RecordContext): MaybePromise<Iterable<R>>;
  abstract flatMap2(value: B, ctx: RecordContext): MaybePromise<Iterable<R>>;
}
/** Object form of a router's classifier: the label of each record. */
export interface RouteFunctionLike<T> extends RichFunction {
  route(value: T, ctx: RecordContext): MaybePromise<string>;
}
/** A router's classifier as lambda or object. */
export type RouteFn<T> = ((value: T, ctx: RecordContext) => MaybePromise<string>) | RouteFunctionLike<T>;

/**
 * The mark of a function whose work waits on I/O (a model, a remote store, a network sink) rather
 * than the CPU: a stage holding one runs on the worker's main thread, never on a stage thread.
 */
export const MAIN_THREAD: unique symbol = Symbol.for("sage-temporal.main-thread");

/** Marks `fn` (a lambda or a function object) to run on the worker's main thread; returns it. */
export function onMainThread<F extends object>(fn: F): F {
  // Not enumerable and keyed by a symbol: the plan hash (source and own fields) does not change.
  Object.defineProperty(fn, MAIN_THREAD, { value: true, enumerable: false });
  return fn;
}

/** True when `fn` was marked with `onMainThread` (or its class carries the mark). */
export function runsOnMainThread(fn: unknown): boolean {
  return (typeof fn === "object" || typeof fn === "function") && fn !== null && (fn as { [MAIN_THREAD]?: unknown })[MAIN_THREAD] === true;
}
