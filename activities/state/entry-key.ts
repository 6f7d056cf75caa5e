/**
 * The key of a state entry, which is also the changelog's message key: `GGGGG|name|namespace|key`
 * (key group zero-padded to five digits, so entries sort and filter by key group; the encoded key
 * last, so it may hold any character). Names never contain `|` (`userStateName` escapes it) and
 * namespaces are the engine's own (a window's start, a session's `start,end`, `ts:namespace` of a
 * timer, a join side, or empty).
 */

/** Most key groups an entry key can name (five digits). */
export const MAX_KEY_GROUPS = 100_000;

const prefixes: string[] = [];

/** `GGGGG|` for key group `kg`, cached. */
function prefixOf(kg: number): string {
  let p = prefixes[kg];
  if (p === undefined) {
    if (!Number.isInteger(kg) || kg < 0 || kg >= MAX_KEY_GROUPS) throw new RangeError(`key group ${kg} is outside [0, ${MAX_KEY_GROUPS})`);
    p = `${String(kg).padStart(5, "0")}|`;
    prefixes[kg] = p;
  }
  return p;
}

/** The entry key of state `name` of encoded key `key` in key group `kg`, namespace `ns`. */
export function entryKey(kg: number, name: string, ns: string, key: string): string {
  return prefixOf(kg) + name + "|" + ns + "|" + key;
}

/** The parts of an entry key. */
export interface EntryKeyParts {
  keyGroup: number;
  name: string;
  namespace: string;
  key: string;
}

/** The parts of `entry` (made by `entryKey`). */
export function parseEntryKey(entry: string): EntryKeyParts {
  const nameEnd = entry.indexOf("|", 6);
  const nsEnd = entry.indexOf("|", nameEnd + 1);
  if (entry[5] !== "|" || nameEnd < 0 || nsEnd < 0) throw new Error(`not a state entry key: ${JSON.stringify(entry.slice(0, 80))}`);
  return { keyGroup: Number(entry.slice(0, 5)), name: entry.slice(6, nameEnd), namespace: entry.slice(nameEnd + 1, nsEnd), key: entry.slice(nsEnd + 1) };
}

/** The key group of `entry`, without parsing the rest. */
export function keyGroupOfEntry(entry: string): number {
  return Number(entry.slice(0, 5));
}

/** The namespace of a timer entry: its time, then the namespace it fires for. */
export function timerNamespace(ts: number, ns: string): string {
  return `${ts}:${ns}`;
}

/** The time and namespace of a timer entry's namespace. */
export function parseTimerNamespace(timerNs: string): { ts: number; namespace: string } {
  const colon = timerNs.indexOf(":");
  return { ts: Number(timerNs.slice(0, colon)), namespace: timerNs.slice(colon + 1) };
}
