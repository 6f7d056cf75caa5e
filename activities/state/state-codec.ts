/**
 * Encodes state values as JSON, refusing what JSON cannot carry faithfully: the changelog and a
 * restore must give back exactly the value that was stored. Plain data takes a fast walk and plain
 * `JSON.stringify`; anything else takes a slow walk that names what is wrong and where.
 */
import { StateValueError } from "./errors.js";

/** Deepest nesting the fast walk follows; deeper values (and cycles) take the slow walk. */
const MAX_FAST_DEPTH = 64;

/** True when `value` holds only strings, finite numbers, booleans, null, arrays and plain objects. */
function plain(value: unknown, depth: number): boolean {
  switch (typeof value) {
    case "string":
    case "boolean":
      return true;
    case "number":
      return Number.isFinite(value);
    case "object": {
      if (value === null) return true;
      if (depth >= MAX_FAST_DEPTH) return false;
      if (Array.isArray(value)) {
        for (let i = 0; i < value.length; i++) if (value[i] === undefined || !plain(value[i], depth + 1)) return false;
        return true;
      }
      const proto = Object.getPrototypeOf(value) as unknown;
      if (proto !== Object.prototype && proto !== null) return false;
      const o = value as Record<string, unknown>;
      // An undefined property is dropped by JSON and reads back as absent: faithful enough.
      for (const k in o) if (o[k] !== undefined && !plain(o[k], depth + 1)) return false;
      return true;
    }
    default:
      return false;
  }
}

/** What is wrong with `value` at `path`, or null when nothing is. */
function problem(value: unknown, path: string, seen: Set<object>): string | null {
  switch (typeof value) {
    case "string":
    case "boolean":
      return null;
    case "number":
      return Number.isFinite(value) ? null : `${path} is ${String(value)}`;
    case "undefined":
      return `${path} is undefined`;
    case "function":
      return `${path} is a function`;
    case "symbol":
      return `${path} is a symbol`;
    case "bigint":
      return `${path} is a BigInt (${String(value)}n)`;
  }
  if (value === null) return null;
  const object = value as object;
  if (seen.has(object)) return `${path} contains a cycle`;
  const proto = Object.getPrototypeOf(object) as unknown;
  if (!Array.isArray(object) && proto !== Object.prototype && proto !== null) {
    const name = (object as { constructor?: { name?: string } }).constructor?.name || "object";
    const hint = typeof (object as { then?: unknown }).then === "function" ? " (state functions must return values, not promises)" : "";
    return `${path} is a ${name}${hint}; state holds only plain objects, arrays, strings, finite numbers, booleans and null`;
  }
  seen.add(object);
  try {
    if (Array.isArray(object)) {
      for (let i = 0; i < object.length; i++) {
        const p = problem(object[i], `${path}[${i}]`, seen);
        if (p !== null) return p;
      }
      return null;
    }
    for (const [k, v] of Object.entries(object)) {
      if (v === undefined) continue;
      const p = problem(v, `${path}.${k}`, seen);
      if (p !== null) return p;
    }
    return null;
  } finally {
    seen.delete(object);
  }
}

/**
 * The JSON text of `value` for the state `label` names (e.g. `state "count"`); a `StateValueError`
 * naming the state and the offending part when JSON cannot carry it faithfully: undefined (at the
 * top or in an array), functions, symbols, BigInts, NaN and ±Infinity, Maps, Sets, Dates, class
 * instances, cycles. Object properties set to undefined are dropped (they read back as absent).
 */
export function encodeStateValue(value: unknown, label: () => string): string {
  if (value !== undefined && plain(value, 0)) return JSON.stringify(value);
  const p = problem(value, "the value", new Set());
  // Only a deep but valid value reaches here without a problem.
  if (p === null) return JSON.stringify(value);
  throw new StateValueError(`${label()} cannot hold this value: ${p}`);
}
