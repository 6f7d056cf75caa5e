/**
 * One keyed operator's state in a savepoint: its entries (timers included) as gzip'd JSON lines
 * `[entryKey, value]`, sorted by entry key and so by key group, with the checksum and the sizes per
 * key group the manifest records. Reading checks the size and checksum first, so a truncated or
 * corrupt file is named before anything is restored from it.
 */
import { createHash } from "node:crypto";
import { gunzipSync, gzipSync } from "node:zlib";
import { keyGroupOfEntry, parseEntryKey } from "../../activities/state/entry-key.js";
import { STATE } from "../../activities/state/state-names.js";
import { SavepointError } from "./errors.js";
import type { SavepointOperator } from "./manifest.js";

/** A state entry as the changelog carries it: entry key and JSON value. */
export type StateEntry = readonly [key: string, value: string];

/** The encoded data file of one operator and what the manifest says of it. */
export interface EncodedState {
  data: Buffer;
  summary: Pick<SavepointOperator, "bytes" | "sha256" | "entries" | "timers" | "keyGroups">;
}

/** True for a timer entry (event or processing time). */
function isTimer(key: string): boolean {
  const name = parseEntryKey(key).name;
  return name === STATE.eventTimers || name === STATE.processingTimers;
}

/** Encodes the live entries of one operator (`entries`: entry key to JSON value). */
export function encodeState(entries: ReadonlyMap<string, string>): EncodedState {
  const keys = [...entries.keys()].sort();
  const perGroup = new Map<number, [number, number]>();
  const lines: string[] = [];
  let timers = 0;
  for (const key of keys) {
    const value = entries.get(key)!;
    const line = JSON.stringify([key, value]);
    lines.push(line);
    const kg = keyGroupOfEntry(key);
    const g = perGroup.get(kg) ?? [0, 0];
    g[0]++;
    g[1] += key.length + value.length;
    perGroup.set(kg, g);
    if (isTimer(key)) timers++;
  }
  const data = gzipSync(lines.length > 0 ? `${lines.join("\n")}\n` : "");
  return {
    data,
    summary: {
      bytes: data.byteLength,
      sha256: createHash("sha256").update(data).digest("hex"),
      entries: keys.length,
      timers,
      keyGroups: [...perGroup].sort((a, b) => a[0] - b[0]).map(([kg, [n, bytes]]) => [kg, n, bytes]),
    },
  };
}

/** Decodes an operator's data file read from `where`, checking it against the manifest first. */
export function decodeState(data: Buffer, op: SavepointOperator, where: string): StateEntry[] {
  if (data.byteLength !== op.bytes)
    throw new SavepointError(`${where} has ${data.byteLength} bytes but the manifest says ${op.bytes}: the file is truncated or was replaced`);
  const sha = createHash("sha256").update(data).digest("hex");
  if (sha !== op.sha256) throw new SavepointError(`${where} is corrupt: its SHA-256 is ${sha}, the manifest says ${op.sha256}`);
  let text: string;
  try {
    text = gunzipSync(data).toString("utf8");
  } catch (err) {
    throw new SavepointError(`${where} is corrupt: ${(err as Error).message}`, { cause: err });
  }
  const out: StateEntry[] = [];
  let line = 0;
  for (const raw of text.split("\n")) {
    line++;
    if (raw === "") continue;
    let entry: unknown;
    try {
      entry = JSON.parse(raw);
    } catch (err) {
      throw new SavepointError(`${where} line ${line} is not JSON: ${(err as Error).message}`, { cause: err });
    }
    if (!Array.isArray(entry) || entry.length !== 2 || typeof entry[0] !== "string" || typeof entry[1] !== "string")
      throw new SavepointError(`${where} line ${line} is not a state entry [key, value]`);
    out.push([entry[0], entry[1]]);
  }
  if (out.length !== op.entries) throw new SavepointError(`${where} holds ${out.length} entries but the manifest says ${op.entries}`);
  return out;
}
