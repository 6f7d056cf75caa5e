/**
 * The stateful bench's window results: the plain TypeScript reference every engine must equal, the
 * parsing of an engine's output records, and the comparison that says what is missing, extra,
 * different or emitted twice.
 */
import { FLUSH_SERVICE, type StatefulEvent } from "./events.js";

/** Size of the tumbling windows (ms). */
export const TUMBLING_MS = 10_000;
/** Size of the sliding windows (ms). */
export const SLIDING_SIZE_MS = 30_000;
/** Slide of the sliding windows (ms). */
export const SLIDING_SLIDE_MS = 10_000;

/** One tumbling window's count: `[start, end)` in event time, ms. */
export interface TumblingResult {
  service: string;
  start: number;
  end: number;
  count: number;
}

/** One sliding window's latency aggregate. */
export interface SlidingResult extends TumblingResult {
  sum: number;
  min: number;
  max: number;
}

/** Both outputs of the job. */
export interface WindowResults {
  tumbling: TumblingResult[];
  sliding: SlidingResult[];
}

/** What `compareResults` found. */
export interface ResultDiff<T extends TumblingResult> {
  equal: boolean;
  expected: number;
  actual: number;
  /** Expected windows the engine did not emit. */
  missing: T[];
  /** Windows the engine emitted that the reference does not have. */
  extra: T[];
  /** The same window with other values. */
  different: Array<{ expected: T; actual: T }>;
  /** Every emission of a window after its first. */
  duplicates: T[];
  /** One line, plus up to three examples of each kind of difference. */
  summary: string;
}

/** The identity of a window result. */
export function windowKey(r: TumblingResult): string {
  return `${r.service}|${r.start}|${r.end}`;
}

/**
 * Both outputs over `events`, with every event counted: the bench's generator makes no event later
 * than the out-of-orderness bound, so no engine may drop one. Flush events are left out. Windows
 * are aligned to the epoch, as in Kafka Streams and Flink; sorted by service, then start.
 */
export function referenceWindows(events: readonly StatefulEvent[]): WindowResults {
  const tumbling = new Map<string, TumblingResult>();
  const sliding = new Map<string, SlidingResult>();
  for (const e of events) {
    if (e.service === FLUSH_SERVICE) continue;
    const start = e.ts - (e.ts % TUMBLING_MS);
    const t = upsert(tumbling, { service: e.service, start, end: start + TUMBLING_MS, count: 0 });
    t.count++;
    const last = e.ts - (e.ts % SLIDING_SLIDE_MS);
    for (let s = last; s > e.ts - SLIDING_SIZE_MS; s -= SLIDING_SLIDE_MS) {
      const w = upsert(sliding, { service: e.service, start: s, end: s + SLIDING_SIZE_MS, count: 0, sum: 0, min: Infinity, max: -Infinity });
      w.count++;
      w.sum += e.latency;
      w.min = Math.min(w.min, e.latency);
      w.max = Math.max(w.max, e.latency);
    }
  }
  return { tumbling: sortResults([...tumbling.values()]), sliding: sortResults([...sliding.values()]) };
}

function upsert<T extends TumblingResult>(map: Map<string, T>, fresh: T): T {
  const key = windowKey(fresh);
  const found = map.get(key);
  if (found) return found;
  map.set(key, fresh);
  return fresh;
}

/** Results sorted by service, then start, then end (a copy). */
export function sortResults<T extends TumblingResult>(results: readonly T[]): T[] {
  return [...results].sort((a, b) => (a.service < b.service ? -1 : a.service > b.service ? 1 : a.start - b.start || a.end - b.end));
}

/** Parses an output record's JSON value; throws on a value that is not a window result. */
export function parseResult<T extends TumblingResult>(value: string): T {
  const r = JSON.parse(value) as T;
  if (typeof r.service !== "string" || !Number.isFinite(r.start) || !Number.isFinite(r.end) || !Number.isFinite(r.count)) {
    throw new Error(`not a window result: ${value}`);
  }
  return r;
}

/** Compares an engine's output with the reference, field by field on every field the reference has. */
export function compareResults<T extends TumblingResult>(expected: readonly T[], actual: readonly T[]): ResultDiff<T> {
  const want = new Map(expected.map((r) => [windowKey(r), r]));
  const seen = new Map<string, T>();
  const diff = { missing: [] as T[], extra: [] as T[], different: [] as Array<{ expected: T; actual: T }>, duplicates: [] as T[] };
  for (const r of actual) {
    const key = windowKey(r);
    if (seen.has(key)) {
      diff.duplicates.push(r);
      continue;
    }
    seen.set(key, r);
    const e = want.get(key);
    if (!e) diff.extra.push(r);
    else if (Object.keys(e).some((f) => e[f as keyof T] !== r[f as keyof T])) diff.different.push({ expected: e, actual: r });
  }
  for (const [key, r] of want) if (!seen.has(key)) diff.missing.push(r);
  const equal = diff.missing.length + diff.extra.length + diff.different.length + diff.duplicates.length === 0;
  return { equal, expected: expected.length, actual: actual.length, ...diff, summary: summarize(equal, expected.length, actual.length, diff) };
}

function summarize<T>(
  equal: boolean,
  expected: number,
  actual: number,
  diff: { missing: T[]; extra: T[]; different: Array<{ expected: T; actual: T }>; duplicates: T[] },
): string {
  if (equal) return `equal: ${actual} windows, as the reference`;
  const head = `${actual} windows, reference ${expected}: ${diff.missing.length} missing, ${diff.extra.length} extra, ${diff.different.length} different, ${diff.duplicates.length} duplicates`;
  const examples = (label: string, items: unknown[]) =>
    items.length
      ? [
          `  ${label}: ${items
            .slice(0, 3)
            .map((i) => JSON.stringify(i))
            .join("; ")}`,
        ]
      : [];
  return [
    head,
    ...examples("missing", diff.missing),
    ...examples("extra", diff.extra),
    ...examples("different", diff.different),
    ...examples("duplicates", diff.duplicates),
  ].join("\n");
}
