/**
 * The keyed-state Functions API: what keyed and windowed operators take (aggregate, reduce, keyed
 * process, window process, joins) and what they see (state handles, timers, the window). Declared
 * here; the stage runner implements the contexts.
 */
import type { OutputTag, RecordContext } from "./context.js";
import type { MaybePromise, RichFunction } from "./functions.js";
import type { TimeWindow } from "./windows.js";

/** A rolling or per-window reduce: combines two values of the same type. */
export type ReduceFn<T> = ((a: T, b: T) => T) | ReduceFunctionLike<T>;

/** The object form of a reduce function. */
export interface ReduceFunctionLike<T> extends RichFunction {
  reduce(a: T, b: T): T;
}

/** An incremental aggregate (as Flink's): an accumulator per key (and window), merged for sessions. */
export interface AggregateFunction<T, ACC, R> extends RichFunction {
  createAccumulator(): ACC;
  add(value: T, accumulator: ACC): ACC;
  getResult(accumulator: ACC): R;
  /** Two accumulators as one (session windows merge); required for session windows. */
  merge?(a: ACC, b: ACC): ACC;
}

/** Options of a keyed state handle. */
export interface StateOptions {
  /** The value expires this long after it was last written (processing time), ms. */
  ttlMs?: number;
}

/** One value per key. */
export interface ValueState<T> {
  value(): T | undefined;
  update(value: T): void;
  clear(): void;
}

/** A list per key. */
export interface ListState<T> {
  get(): T[];
  add(value: T): void;
  update(values: T[]): void;
  clear(): void;
}

/** A map per key. Map keys are strings. */
export interface MapState<K extends string, V> {
  get(key: K): V | undefined;
  put(key: K, value: V): void;
  remove(key: K): void;
  contains(key: K): boolean;
  keys(): K[];
  entries(): Array<[K, V]>;
  clear(): void;
}

/** The state of the current key, by state name; values must be JSON (the changelog carries them). */
export interface KeyedStateStore {
  value<T>(name: string, options?: StateOptions): ValueState<T>;
  list<T>(name: string, options?: StateOptions): ListState<T>;
  map<K extends string, V>(name: string, options?: StateOptions): MapState<K, V>;
}

/** Timers of the current key; durable: they fire after a crash at the time they were set for. */
export interface TimerService {
  /** The current watermark (event time): -Infinity before the first. */
  currentWatermark(): number;
  /** The worker's clock, ms. */
  currentProcessingTime(): number;
  registerEventTime(timestamp: number): void;
  registerProcessingTime(timestamp: number): void;
  deleteEventTime(timestamp: number): void;
  deleteProcessingTime(timestamp: number): void;
}

/** What a keyed process function sees with a record or a timer. */
export interface KeyedContext<K, O> extends RecordContext {
  /** The current key. */
  readonly key: K;
  /** The record's event time (undefined without timestamps), or the timer's time. */
  readonly timestamp: number | undefined;
  readonly state: KeyedStateStore;
  readonly timers: TimerService;
  emit(value: O): void;
  output<X>(tag: OutputTag<X>, value: X): void;
}

/** What `onTimer` sees: the keyed context and which clock fired. */
export interface OnTimerContext<K, O> extends KeyedContext<K, O> {
  readonly domain: "event" | "processing";
}

/** A keyed process function: per record with the key's state and timers; `onTimer` when a timer fires. */
export interface KeyedProcessFunction<K, T, O> extends RichFunction {
  processElement(value: T, ctx: KeyedContext<K, O>): MaybePromise<void>;
  onTimer?(timestamp: number, ctx: OnTimerContext<K, O>): MaybePromise<void>;
}

/** What a window function sees besides the key: the window, and outputs. */
export interface WindowContext<O> extends RecordContext {
  readonly window: TimeWindow;
  /** The watermark when the window fired. */
  readonly currentWatermark: number;
  emit(value: O): void;
  output<X>(tag: OutputTag<X>, value: X): void;
}

/** All records of one window of one key, when it fires (`WindowedStream.process`). */
export type ProcessWindowFn<K, T, O> =
  ((key: K, elements: T[], ctx: WindowContext<O>) => MaybePromise<void>) | { process(key: K, elements: T[], ctx: WindowContext<O>): MaybePromise<void> };

/** Turns a window's aggregate or reduce result into the output record, with the key and the window. */
export type WindowResultFn<K, R, O> = (key: K, window: TimeWindow, result: R) => O;

/** Pairs of a window join: called once per pair of records with equal keys in the same window. */
export type JoinFn<A, B, O> = (left: A, right: B) => O;

/** What an interval-join function sees. */
export interface IntervalJoinContext<O> extends RecordContext {
  readonly leftTimestamp: number;
  readonly rightTimestamp: number;
  emit(value: O): void;
}

/** Called once per pair with `left.ts + lower <= right.ts <= left.ts + upper`. */
export type IntervalJoinFn<A, B, O> = (left: A, right: B, ctx: IntervalJoinContext<O>) => MaybePromise<void>;
