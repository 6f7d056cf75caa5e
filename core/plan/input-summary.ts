/**
 * The inputs of a keyed output (a window's result, a rolling aggregate, a join's pair), as a bounded
 * summary: how many source records went into it, per source partition the lowest and highest offset
 * among them, and the first `INPUT_SAMPLE` of them by position. A keyed operator keeps the summary
 * in its state beside the window or accumulator (so it is checkpointed and restored with it), and
 * the output carries it in a compact `sage-inputs` header, with the operator, key and window that
 * let `sage lineage --expand` list every input by scanning the named ranges. Pure.
 */

/** Header of a keyed output: its inputs' summary (`formatInputs`). */
export const INPUTS_HEADER = "sage-inputs";

/** Most source positions a summary lists one by one. */
export const INPUT_SAMPLE = 16;

/** A summary as a keyed operator keeps it in state; origins are `topic:partition`. */
export interface InputSummary {
  /** How many inputs (those of unknown position included). */
  n: number;
  /** Per origin, the lowest and highest offset of its inputs. */
  r: Record<string, [number, number]>;
  /** The first `INPUT_SAMPLE` inputs of known position: [origin, offset]. */
  s: Array<[string, number]>;
}

/** The summary of no input. */
export function emptySummary(): InputSummary {
  return { n: 0, r: {}, s: [] };
}

/** `summary` with one more input (at `origin`/`offset`; null: its position is unknown), changed in place. */
export function addInput(summary: InputSummary, at: readonly [string, number] | null): InputSummary {
  summary.n++;
  if (at === null) return summary;
  const [origin, offset] = at;
  const range = summary.r[origin];
  if (range === undefined) summary.r[origin] = [offset, offset];
  else {
    if (offset < range[0]) range[0] = offset;
    if (offset > range[1]) range[1] = offset;
  }
  if (summary.s.length < INPUT_SAMPLE) summary.s.push([origin, offset]);
  return summary;
}

/** The summary of the inputs of both (sessions merging): counts add, ranges widen, samples concatenate up to the bound. */
export function mergeSummaries(a: InputSummary, b: InputSummary): InputSummary {
  const r: Record<string, [number, number]> = { ...a.r };
  for (const [origin, [lo, hi]] of Object.entries(b.r)) {
    const mine = r[origin];
    r[origin] = mine === undefined ? [lo, hi] : [Math.min(mine[0], lo), Math.max(mine[1], hi)];
  }
  return { n: a.n + b.n, r, s: a.s.concat(b.s).slice(0, INPUT_SAMPLE) };
}

/** What a keyed output's `sage-inputs` header says. */
export interface OutputInputs {
  /** The keyed operator that emitted it (its repartition topic holds the inputs). */
  operator: string;
  /** The encoded key (`encodeKey`) of the output. */
  key: string;
  /** The window's event-time (or processing-time) range `[start, end)`; null when the output has none (count windows, rolling, joins). */
  window: { start: number; end: number } | null;
  summary: InputSummary;
}

/** What a keyed operator's emission names as its inputs (the operator is the emitting one). */
export type EmittedInputs = Omit<OutputInputs, "operator">;

/** `topic:partition` of `topic[partition]`. */
function originOf(topic: string, partition: number): string {
  return `${topic}:${partition}`;
}

/** The topic and partition of an origin `topic:partition`. */
export function splitOrigin(origin: string): { topic: string; partition: number } {
  const colon = origin.lastIndexOf(":");
  return { topic: origin.slice(0, colon), partition: Number(origin.slice(colon + 1)) };
}

/**
 * The header value: `<count>|<operator>|<start>-<end>|<topic>[<p>]@<min>-<max>:<o1>,<o2> ...|<key>`
 * (the window empty when there is none; one space-separated entry per source partition, its
 * sampled offsets after the colon). Topic names hold no `|`, space, `:` or `,`; the key goes last,
 * so it may hold anything.
 */
export function formatInputs(inputs: OutputInputs): string {
  const { summary, window } = inputs;
  const sampled = new Map<string, number[]>();
  for (const [origin, offset] of summary.s) {
    const list = sampled.get(origin);
    if (list) list.push(offset);
    else sampled.set(origin, [offset]);
  }
  const parts = Object.entries(summary.r).map(([origin, [lo, hi]]) => {
    const { topic, partition } = splitOrigin(origin);
    return `${topic}[${partition}]@${lo}-${hi}:${(sampled.get(origin) ?? []).join(",")}`;
  });
  return `${summary.n}|${inputs.operator}|${window ? `${window.start}-${window.end}` : ""}|${parts.join(" ")}|${inputs.key}`;
}

/** Reads a `sage-inputs` header value; null when it is not one. */
export function parseInputs(value: string): OutputInputs | null {
  const fields: string[] = [];
  let at = 0;
  for (let i = 0; i < 4; i++) {
    const bar = value.indexOf("|", at);
    if (bar < 0) return null;
    fields.push(value.slice(at, bar));
    at = bar + 1;
  }
  const [count, operator, win, parts] = fields as [string, string, string, string];
  const n = Number(count);
  if (!/^\d+$/.test(count) || operator === "") return null;
  let window: OutputInputs["window"] = null;
  if (win !== "") {
    const w = /^(-?\d+)-(-?\d+)$/.exec(win);
    if (!w) return null;
    window = { start: Number(w[1]), end: Number(w[2]) };
  }
  const summary: InputSummary = { n, r: {}, s: [] };
  for (const part of parts === "" ? [] : parts.split(" ")) {
    const m = /^(.+)\[(\d+)\]@(\d+)-(\d+):([\d,]*)$/.exec(part);
    if (!m) return null;
    const origin = originOf(m[1]!, Number(m[2]));
    summary.r[origin] = [Number(m[3]), Number(m[4])];
    for (const o of m[5] === "" ? [] : m[5]!.split(",")) summary.s.push([origin, Number(o)]);
  }
  return { operator, key: value.slice(at), window, summary };
}

/** True when `origin`/`offset` lies in one of the summary's per-origin ranges. */
export function inRanges(summary: InputSummary, origin: string, offset: number): boolean {
  const range = summary.r[origin];
  return range !== undefined && offset >= range[0] && offset <= range[1];
}
