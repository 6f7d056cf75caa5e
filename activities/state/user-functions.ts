/**
 * The user's keyed functions in one callable form each, whether given as a lambda or an object
 * (`{ reduce }`, an `AggregateFunction`, `{ processElement, onTimer }`, `{ process }`), bound once
 * when the operator is made so no record pays for the check.
 */
import type { MaybePromise } from "../../core/api/functions.js";
import type { AggregateFunction, IntervalJoinContext, KeyedContext, OnTimerContext, WindowContext } from "../../core/api/state.js";
import type { TimeWindow } from "../../core/api/windows.js";
import { PipelineDefinitionError } from "../../core/errors.js";

/** A reduce as one function. */
export type Reduce = (a: unknown, b: unknown) => unknown;
/** An aggregate function with its methods bound (merge may be absent). */
export type Aggregate = Required<Pick<AggregateFunction<unknown, unknown, unknown>, "createAccumulator" | "add" | "getResult">> &
  Pick<AggregateFunction<unknown, unknown, unknown>, "merge">;
/** A window process function as one function. */
export type ProcessWindow = (key: unknown, elements: unknown[], ctx: WindowContext<unknown>) => MaybePromise<void>;
/** A window result function. */
export type WindowResult = (key: unknown, window: TimeWindow, result: unknown) => unknown;
/** A keyed process function with its methods bound. */
export interface KeyedProcess {
  processElement(value: unknown, ctx: KeyedContext<unknown, unknown>): MaybePromise<void>;
  onTimer: ((timestamp: number, ctx: OnTimerContext<unknown, unknown>) => MaybePromise<void>) | undefined;
}
/** A window join function. */
export type Join = (left: unknown, right: unknown) => unknown;
/** An interval join function. */
export type IntervalJoin = (left: unknown, right: unknown, ctx: IntervalJoinContext<unknown>) => MaybePromise<void>;

type Methods = Record<string, unknown>;

/** `fn` itself when it is a function, else its method `name` bound to it; a definition error naming `operator` otherwise. */
function callable(fn: unknown, name: string, operator: string): (...args: never[]) => unknown {
  if (typeof fn === "function") return fn as (...args: never[]) => unknown;
  const method = (fn as Methods | null)?.[name];
  if (typeof method !== "function") throw new PipelineDefinitionError(`keyed operator "${operator}": expected a function or an object with ${name}()`);
  return (method as (...args: never[]) => unknown).bind(fn);
}

/** A method of an object, bound; required unless `optional`. */
function method(fn: unknown, name: string, operator: string, optional: boolean): ((...args: never[]) => unknown) | undefined {
  const m = (fn as Methods | null)?.[name];
  if (typeof m === "function") return (m as (...args: never[]) => unknown).bind(fn);
  if (optional) return undefined;
  throw new PipelineDefinitionError(`keyed operator "${operator}": the function object needs ${name}()`);
}

/** A reduce from `(a, b) => ...` or `{ reduce }`. */
export function reduceOf(fn: unknown, operator: string): Reduce {
  return callable(fn, "reduce", operator) as Reduce;
}

/** An aggregate from an `AggregateFunction` object or class instance. */
export function aggregateOf(fn: unknown, operator: string): Aggregate {
  return {
    createAccumulator: method(fn, "createAccumulator", operator, false) as Aggregate["createAccumulator"],
    add: method(fn, "add", operator, false) as Aggregate["add"],
    getResult: method(fn, "getResult", operator, false) as Aggregate["getResult"],
    merge: method(fn, "merge", operator, true),
  };
}

/** A window process function from a lambda or `{ process }`. */
export function processWindowOf(fn: unknown, operator: string): ProcessWindow {
  return callable(fn, "process", operator) as ProcessWindow;
}

/** A keyed process function from `{ processElement, onTimer? }` (a lambda is taken as `processElement`). */
export function keyedProcessOf(fn: unknown, operator: string): KeyedProcess {
  return {
    processElement: callable(fn, "processElement", operator) as KeyedProcess["processElement"],
    onTimer: typeof fn === "function" ? undefined : (method(fn, "onTimer", operator, true) as KeyedProcess["onTimer"]),
  };
}

/** A window join function. */
export function joinOf(fn: unknown, operator: string): Join {
  return callable(fn, "join", operator) as Join;
}

/** An interval join function. */
export function intervalJoinOf(fn: unknown, operator: string): IntervalJoin {
  return callable(fn, "processElement", operator) as IntervalJoin;
}

/** A window result function (optional). */
export function windowResultOf(fn: unknown, operator: string): WindowResult | undefined {
  return fn === undefined ? undefined : (callable(fn, "apply", operator) as WindowResult);
}
