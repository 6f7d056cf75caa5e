/**
 * Sequencing of user functions that may or may not return promises: a synchronous function keeps
 * the whole path synchronous (no promise, no microtask per record); the first promise switches the
 * rest of the sequence to awaiting, in the same order.
 */
import type { MaybePromise } from "../../core/api/functions.js";

/** True for a promise (or any thenable) a user function returned. */
export function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return typeof value === "object" && value !== null && typeof (value as { then?: unknown }).then === "function";
}

/** Runs `next` after `first` has finished: at once when `first` is not a promise. */
export function andThen(first: MaybePromise<unknown>, next: () => MaybePromise<void>): MaybePromise<void> {
  return isPromiseLike(first) ? Promise.resolve(first).then(next) : next();
}

/** Calls `step` for each item `next` yields until it yields undefined, one after the other. */
export function forEachInOrder<T>(next: () => T | undefined, step: (item: T) => MaybePromise<unknown>): MaybePromise<void> {
  for (let item = next(); item !== undefined; item = next()) {
    const result = step(item);
    if (isPromiseLike(result)) return Promise.resolve(result).then(() => forEachInOrder(next, step));
  }
}
