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

/** JSON text of `record`; `producer` names the operator that emitted it, for the error. */
export function encodeRecord(record: unknown, producer: string): string {
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
        `records that cross a stage boundary enter workflow history`,
    );
  }
}
