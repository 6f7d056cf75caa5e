/**
 * Names of the entries a keyed operator keeps: the engine's own (prefixed `$`) and the user's
 * (escaped so they never start with `$` nor contain the entry-key separator `|`), and how an error
 * speaks of each.
 */

/** The engine's own state names; short, since every changelog entry carries one. */
export const STATE = {
  /** A time window's contents (accumulator, reduced value, or records), namespace = the window. */
  window: "$w",
  /** The live sessions of a key (session windows). */
  sessions: "$s",
  /** Records a key has seen (count windows). */
  count: "$c",
  /** The running value of a rolling reduce or aggregate. */
  rolling: "$r",
  /** Buffered records of an interval join's left and right input. */
  joinLeft: "$j0",
  joinRight: "$j1",
  /** The summary of a window's or a key's inputs (lineage), namespace = the window: its counts, and its sample. */
  inputs: "$i",
  inputSample: "$is",
  /** Event-time and processing-time timers. */
  eventTimers: "$te",
  processingTimers: "$tp",
} as const;

const LABELS: Readonly<Record<string, string>> = {
  [STATE.window]: "the window's state (the accumulator, the reduced value, or its records)",
  [STATE.sessions]: "the key's sessions",
  [STATE.count]: "the key's record count",
  [STATE.rolling]: "the key's running value (rolling reduce or aggregate)",
  [STATE.joinLeft]: "the interval join's buffered left records",
  [STATE.joinRight]: "the interval join's buffered right records",
  [STATE.inputs]: "the counts of the inputs' summary (lineage)",
  [STATE.inputSample]: "the sample of the inputs' summary (lineage)",
  [STATE.eventTimers]: "an event-time timer",
  [STATE.processingTimers]: "a processing-time timer",
};

/** The entry name of the user's state `name`: `%`, `|` and a leading `$` are percent-escaped. */
export function userStateName(name: string): string {
  const escaped = name.replace(/[%|]/g, (c) => (c === "%" ? "%25" : "%7C"));
  return escaped.startsWith("$") ? `%24${escaped.slice(1)}` : escaped;
}

/** How an error names the state stored under entry name `name`. */
export function stateLabel(name: string): string {
  if (name.startsWith("$")) return `state ${name}: ${LABELS[name] ?? "internal"}`;
  return `state "${decodeURIComponent(name)}"`;
}
