/**
 * What a window keeps and what it emits when it fires: an incremental value (reduce, aggregate),
 * or the list of its records (process, a window join, and count windows that slide, which evict).
 * The window operators decide when; these decide what.
 */
import type { OutputTag, RecordContext } from "../../core/api/context.js";
import type { MaybePromise } from "../../core/api/functions.js";
import type { WindowContext } from "../../core/api/state.js";
import type { TimeWindow } from "../../core/api/windows.js";
import type { StateBackend } from "./backend.js";
import type { KeyedOutput } from "./keyed-operator.js";
import { encodeStateValue } from "./state-codec.js";
import { STATE, stateLabel } from "./state-names.js";
import type { Aggregate, Join, ProcessWindow, Reduce, WindowResult } from "./user-functions.js";

/** Where a firing window's results go. */
export interface FireTarget {
  readonly ctx: RecordContext;
  readonly out: KeyedOutput;
  /** The watermark when the window fires. */
  readonly watermark: number;
}

/** A window's state under `STATE.window`, namespace = the window (or "" for count windows). */
export interface WindowContents {
  /** Adds a record (from input `side`); true when the window was empty before. */
  add(kg: number, key: string, ns: string, value: unknown, side: number): boolean;
  /** Folds the window state at `from` into `into` and deletes `from` (sessions merging). */
  merge(kg: number, key: string, into: string, from: string): void;
  /** Emits the window's result with output time `timestamp`; `last`: only the last n records count (sliding count windows). */
  fire(kg: number, key: string, ns: string, window: TimeWindow, timestamp: number | undefined, target: FireTarget, last?: number): MaybePromise<void>;
  /** Deletes the window's state. */
  clear(kg: number, key: string, ns: string): void;
}

const W = STATE.window;

/** A window holding the reduced value of its records. */
export class ReduceContents implements WindowContents {
  constructor(
    private readonly backend: StateBackend,
    private readonly reduce: Reduce,
    private readonly result: WindowResult | undefined,
  ) {}

  add(kg: number, key: string, ns: string, value: unknown): boolean {
    const prev = this.backend.get(kg, key, W, ns);
    this.backend.put(kg, key, W, ns, prev === undefined ? value : this.reduce(prev, value));
    return prev === undefined;
  }

  merge(kg: number, key: string, into: string, from: string): void {
    mergeValues(this.backend, kg, key, into, from, this.reduce);
  }

  fire(kg: number, key: string, ns: string, window: TimeWindow, timestamp: number | undefined, target: FireTarget): void {
    const value = this.backend.get(kg, key, W, ns);
    if (value !== undefined) target.out.emit(this.result ? this.result(JSON.parse(key), window, value) : value, timestamp);
  }

  clear(kg: number, key: string, ns: string): void {
    this.backend.remove(kg, key, W, ns);
  }
}

/** A window holding an `AggregateFunction`'s accumulator. */
export class AggregateContents implements WindowContents {
  constructor(
    private readonly backend: StateBackend,
    private readonly agg: Aggregate,
    private readonly result: WindowResult | undefined,
  ) {}

  add(kg: number, key: string, ns: string, value: unknown): boolean {
    const prev = this.backend.get(kg, key, W, ns);
    this.backend.put(kg, key, W, ns, this.agg.add(value, prev === undefined ? this.agg.createAccumulator() : prev));
    return prev === undefined;
  }

  merge(kg: number, key: string, into: string, from: string): void {
    const merge = this.agg.merge;
    if (merge === undefined) throw new Error("session windows need AggregateFunction.merge");
    mergeValues(this.backend, kg, key, into, from, merge);
  }

  fire(kg: number, key: string, ns: string, window: TimeWindow, timestamp: number | undefined, target: FireTarget): void {
    const acc = this.backend.get(kg, key, W, ns);
    if (acc === undefined) return;
    const value = this.agg.getResult(acc);
    target.out.emit(this.result ? this.result(JSON.parse(key), window, value) : value, timestamp);
  }

  clear(kg: number, key: string, ns: string): void {
    this.backend.remove(kg, key, W, ns);
  }
}

function mergeValues(backend: StateBackend, kg: number, key: string, into: string, from: string, merge: (a: unknown, b: unknown) => unknown): void {
  const b = backend.get(kg, key, W, from);
  if (b === undefined) return;
  const a = backend.get(kg, key, W, into);
  backend.put(kg, key, W, into, a === undefined ? b : merge(a, b));
  backend.remove(kg, key, W, from);
}

/** Turns a fired window's records into output. */
export type ListEvaluator = (key: string, window: TimeWindow, elements: unknown[], timestamp: number | undefined, target: FireTarget) => MaybePromise<void>;

/** A window holding its records in arrival order (a join's as `[side, value]`). */
export class ListContents implements WindowContents {
  constructor(
    private readonly backend: StateBackend,
    private readonly evaluate: ListEvaluator,
    private readonly tagSides: boolean,
  ) {}

  add(kg: number, key: string, ns: string, value: unknown, side: number): boolean {
    const json = encodeStateValue(value, () => stateLabel(W));
    return this.backend.appendJson(kg, key, W, ns, this.tagSides ? `[${side},${json}]` : json);
  }

  merge(kg: number, key: string, into: string, from: string): void {
    const b = this.backend.get(kg, key, W, from) as unknown[] | undefined;
    if (b === undefined) return;
    const a = (this.backend.get(kg, key, W, into) as unknown[] | undefined) ?? [];
    this.backend.putJson(kg, key, W, into, JSON.stringify(a.concat(b)));
    this.backend.remove(kg, key, W, from);
  }

  fire(kg: number, key: string, ns: string, window: TimeWindow, timestamp: number | undefined, target: FireTarget, last?: number): MaybePromise<void> {
    const all = this.backend.get(kg, key, W, ns) as unknown[] | undefined;
    if (all === undefined) return;
    return this.evaluate(key, window, last === undefined || all.length <= last ? all : all.slice(-last), timestamp, target);
  }

  clear(kg: number, key: string, ns: string): void {
    this.backend.remove(kg, key, W, ns);
  }
}

/** A `WindowContext` for one firing. */
function windowContext(window: TimeWindow, timestamp: number | undefined, target: FireTarget): WindowContext<unknown> {
  const { ctx, out } = target;
  return {
    operatorId: ctx.operatorId,
    jobId: ctx.jobId,
    params: ctx.params,
    attempt: ctx.attempt,
    logger: ctx.logger,
    service: <T>(name: string) => ctx.service<T>(name),
    window,
    currentWatermark: target.watermark,
    emit: (value: unknown) => out.emit(value, timestamp),
    output: <X>(tag: OutputTag<X>, value: X) => out.side(tag.id, value),
  };
}

/** `fn(key, elements, ctx)` of `WindowedStream.process`. */
export function processEvaluator(fn: ProcessWindow): ListEvaluator {
  return (key, window, elements, timestamp, target) => fn(JSON.parse(key), elements, windowContext(window, timestamp, target));
}

/** A reduce over the records at firing (count windows that slide). */
export function reduceEvaluator(reduce: Reduce, result: WindowResult | undefined): ListEvaluator {
  return (key, window, elements, timestamp, target) => {
    let value = elements[0];
    for (let i = 1; i < elements.length; i++) value = reduce(value, elements[i]);
    target.out.emit(result ? result(JSON.parse(key), window, value) : value, timestamp);
  };
}

/** An aggregate over the records at firing (count windows that slide). */
export function aggregateEvaluator(agg: Aggregate, result: WindowResult | undefined): ListEvaluator {
  return (key, window, elements, timestamp, target) => {
    let acc = agg.createAccumulator();
    for (const e of elements) acc = agg.add(e, acc);
    const value = agg.getResult(acc);
    target.out.emit(result ? result(JSON.parse(key), window, value) : value, timestamp);
  };
}

/** A window join: `fn(left, right)` for every pair, left records in arrival order, then right ones. */
export function joinEvaluator(fn: Join): ListEvaluator {
  return (_key, _window, elements, timestamp, target) => {
    const left: unknown[] = [];
    const right: unknown[] = [];
    for (const e of elements as Array<[number, unknown]>) (e[0] === 0 ? left : right).push(e[1]);
    for (const l of left) for (const r of right) target.out.emit(fn(l, r), timestamp);
  };
}
