/**
 * Serializes records where they leave a stage (sinks, stage edges): JSON, but a value JSON would
 * silently drop or cannot encode (function, symbol, BigInt, undefined, cycle) is an error that names
 * the operator that produced it and where in the record it sits.
 */
import { NonSerializableValueError, PayloadBudgetError } from "../core/errors.js";

function describe(value: unknown): string | null {
  switch (typeof value) {
    case "function":
      return "a function";
    case "symbol":
      return "a symbol";
    case "bigint":
      return `a BigInt (${String(value)}n)`;
    case "undefined":
      return "undefined";
    default:
      return null;
  }
}

function checkedReplacer(this: unknown, key: string, value: unknown): unknown {
  const bad = describe(value);
  if (bad !== null) {
    const where = key === "" ? "the record itself" : `key "${key}"`;
    throw new NonSerializableValueError(`${where} is ${bad}`);
  }
  return value;
}

/** Deepest nesting the fast path walks; deeper values (or cycles) take the checked path. */
const MAX_PLAIN_DEPTH = 64;

/**
 * True when `value` is made only of strings, numbers, booleans, null, arrays and objects without
 * `toJSON`, so plain `JSON.stringify` drops and fails on nothing. Anything else (or an answer of
 * false for a value that is fine after all, e.g. a Date) takes the checked path, which decides.
 */
function plainJson(value: unknown, depth: number): boolean {
  switch (typeof value) {
    case "string":
    case "number":
    case "boolean":
      return true;
    case "object": {
      if (value === null) return true;
      if (depth >= MAX_PLAIN_DEPTH) return false;
      if (Array.isArray(value)) {
        for (let i = 0; i < value.length; i++) if (!plainJson(value[i], depth + 1)) return false;
        return true;
      }
      const o = value as Record<string, unknown>;
      if (typeof o.toJSON === "function") return false;
      for (const k in o) if (!plainJson(o[k], depth + 1)) return false;
      return true;
    }
    default:
      return false;
  }
}

/**
 * JSON text of `record`; `producer` names the operator that emitted it, for the error. Plain data
 * (the common case) is checked by a walk and encoded without a replacer, which is about twice as
 * fast (a replacer function takes JSON.stringify off its fast path).
 */
export function encodeRecord(record: unknown, producer: string): string {
  if (plainJson(record, 0)) return JSON.stringify(record);
  try {
    return JSON.stringify(record, checkedReplacer);
  } catch (err) {
    const reason =
      err instanceof NonSerializableValueError ? err.message : /circular/i.test(String(err)) ? "it contains a cycle" : String((err as Error).message ?? err);
    throw new NonSerializableValueError(`operator "${producer}" emitted a value that cannot be serialized as JSON: ${reason}`);
  }
}

/** Checks one record against the per-record payload budget of workflow history. */
export function checkRecordSize(json: string, producer: string, budget: number): void {
  if (json.length > budget) {
    throw new PayloadBudgetError(
      `operator "${producer}" emitted a record of ${json.length} bytes, over the payload budget of ${budget} bytes (execution.max-batch-bytes); ` +
        `records that cross a stage boundary travel in batches of at most that size (through workflow history in streaming jobs)`,
    );
  }
}
