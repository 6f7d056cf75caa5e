/**
 * Plain reference computations of keyed windows, rolling reduces and joins, for checking the
 * keyed-state engine (and, through the stage runner, whole jobs): no state backend, no timers, no
 * heaps, just the definitions applied to records in arrival order with the watermark in effect
 * before each. Fixed windows and joins are batch computations; sessions are simulated step by step
 * with arrays, since which sessions exist depends on what has fired and been purged.
 */
import type { TimeWindow, WindowSpec } from "../../../core/api/windows.js";

/** One input record in arrival order: encoded key, value, event time, and input side (joins). */
export interface RefRecord<T = unknown> {
  key: string;
  value: T;
  timestamp: number;
  side?: number;
}

/** One window firing: the records it holds, in the order the engine hands them over. */
export interface RefFiring<T = unknown> {
  key: string;
  window: TimeWindow;
  elements: T[];
  /** Output time: `end - 1`; count windows: the event time of the record that filled them. */
  timestamp: number | undefined;
}

/** What a keyed windowing produces: firings in emission order, and the records late for all their windows. */
export interface RefWindowResult<T = unknown> {
  firings: RefFiring<T>[];
  late: RefRecord<T>[];
}

/**
 * The watermark before each record under bounded out-of-orderness: the largest timestamp seen
 * before it, minus the bound, minus 1 (-Infinity before the first record).
 */
export function watermarksBefore(records: ReadonlyArray<{ timestamp: number }>, outOfOrdernessMs: number): number[] {
  let max = -Infinity;
  return records.map((r) => {
    const wm = max - outOfOrdernessMs - 1;
    max = Math.max(max, r.timestamp);
    return wm;
  });
}

/** Watermarks made monotonous (the engine never moves back), with +Infinity appended for the end of input. */
function steps(watermarks: readonly number[]): number[] {
  let max = -Infinity;
  return [...watermarks.map((w) => (max = Math.max(max, w))), Infinity];
}

/** Sort key of a firing: [step, phase (0: watermark before the record, 1: the record), end or start, key]. */
type Order = [number, number, number, string];

function byOrder(a: Order, b: Order): number {
  return a[0] - b[0] || a[1] - b[1] || a[2] - b[2] || (a[3] < b[3] ? -1 : a[3] > b[3] ? 1 : 0);
}

/**
 * Every window firing for `records` (arrival order) with `watermarks[i]` in effect before record
 * i, then the end of input (+Infinity). Time windows as in `window-operator.ts`; count windows
 * ignore the watermarks.
 */
export function referenceWindows<T>(
  records: ReadonlyArray<RefRecord<T>>,
  watermarks: readonly number[],
  spec: WindowSpec,
  allowedLatenessMs = 0,
): RefWindowResult<T> {
  if (spec.kind === "count") return { firings: countFirings(records, spec.size, spec.slide), late: [] };
  if (spec.kind === "session") return sessionFirings(records, steps(watermarks), spec.gapMs, allowedLatenessMs);
  const slide = spec.kind === "sliding" ? spec.slideMs : spec.sizeMs;
  return fixedFirings(records, steps(watermarks), spec.sizeMs, slide, spec.offsetMs, allowedLatenessMs);
}

/** The windows `[start, start + size)` with start = k * slide + offset that hold `ts`, earliest first. */
function windowsOf(ts: number, size: number, slide: number, offset: number): TimeWindow[] {
  const out: TimeWindow[] = [];
  for (let start = Math.floor((ts - offset) / slide) * slide + offset; start > ts - size; start -= slide) out.unshift({ start, end: start + size });
  return out;
}

function fixedFirings<T>(
  records: ReadonlyArray<RefRecord<T>>,
  wm: number[],
  size: number,
  slide: number,
  offset: number,
  lateness: number,
): RefWindowResult<T> {
  const windows = new Map<string, { key: string; window: TimeWindow; accepted: Array<{ at: number; value: T }> }>();
  const late: RefRecord<T>[] = [];
  records.forEach((r, at) => {
    let accepted = false;
    for (const window of windowsOf(r.timestamp, size, slide, offset)) {
      if (window.end - 1 + lateness <= wm[at]!) continue;
      accepted = true;
      const id = `${window.start}|${r.key}`;
      if (!windows.has(id)) windows.set(id, { key: r.key, window, accepted: [] });
      windows.get(id)!.accepted.push({ at, value: r.value });
    }
    if (!accepted) late.push(r);
  });
  const firings: Array<{ order: Order; firing: RefFiring<T> }> = [];
  for (const { key, window, accepted } of windows.values()) {
    const fireStep = wm.findIndex((w) => w >= window.end - 1);
    const onTime = accepted.filter((a) => a.at < fireStep);
    const firing = (elements: Array<{ value: T }>): RefFiring<T> => ({ key, window, elements: elements.map((e) => e.value), timestamp: window.end - 1 });
    if (onTime.length > 0) firings.push({ order: [fireStep, 0, window.end, key], firing: firing(onTime) });
    for (const a of accepted) if (a.at >= fireStep) firings.push({ order: [a.at, 1, window.start, key], firing: firing(accepted.filter((b) => b.at <= a.at)) });
  }
  return { firings: firings.sort((a, b) => byOrder(a.order, b.order)).map((f) => f.firing), late };
}

interface RefSession<T> {
  start: number;
  end: number;
  elements: T[];
  /** Whether its firing at `end - 1` is still to come. */
  armed: boolean;
}

function sessionFirings<T>(records: ReadonlyArray<RefRecord<T>>, wm: number[], gap: number, lateness: number): RefWindowResult<T> {
  const live = new Map<string, Array<RefSession<T>>>();
  const firings: RefFiring<T>[] = [];
  const late: RefRecord<T>[] = [];
  const fire = (key: string, s: RefSession<T>): void => {
    firings.push({ key, window: { start: s.start, end: s.end }, elements: [...s.elements], timestamp: s.end - 1 });
  };
  const advance = (w: number): void => {
    const due: Array<[string, RefSession<T>]> = [];
    for (const [key, sessions] of live) for (const s of sessions) if (s.armed && s.end - 1 <= w) due.push([key, s]);
    due.sort(([ka, a], [kb, b]) => a.end - b.end || (ka < kb ? -1 : ka > kb ? 1 : 0));
    for (const [key, s] of due) {
      s.armed = false;
      fire(key, s);
    }
    for (const [key, sessions] of live)
      live.set(
        key,
        sessions.filter((s) => s.end - 1 + lateness > w),
      );
  };
  records.forEach((r, at) => {
    advance(wm[at]!);
    const sessions = live.get(r.key) ?? [];
    const start = r.timestamp;
    const end = r.timestamp + gap;
    const overlapping = sessions.filter((s) => s.start <= end && s.end >= start).sort((a, b) => a.start - b.start);
    if (overlapping.length === 0 && end - 1 + lateness <= wm[at]!) {
      late.push(r);
      return;
    }
    const merged: RefSession<T> = {
      start: Math.min(start, ...overlapping.map((s) => s.start)),
      end: Math.max(end, ...overlapping.map((s) => s.end)),
      elements: [...overlapping.flatMap((s) => s.elements), r.value],
      armed: false,
    };
    merged.armed = merged.end - 1 > wm[at]!;
    live.set(r.key, [...sessions.filter((s) => !overlapping.includes(s)), merged]);
    if (!merged.armed) fire(r.key, merged);
  });
  advance(Infinity);
  return { firings, late };
}

function countFirings<T>(records: ReadonlyArray<RefRecord<T>>, size: number, slide: number): RefFiring<T>[] {
  const seen = new Map<string, T[]>();
  const firings: RefFiring<T>[] = [];
  for (const r of records) {
    const all = seen.get(r.key) ?? [];
    all.push(r.value);
    seen.set(r.key, all);
    const n = all.length;
    if (n % slide === 0)
      firings.push({ key: r.key, window: { start: Math.max(0, n - size), end: n }, elements: all.slice(Math.max(0, n - size)), timestamp: r.timestamp });
  }
  return firings;
}

/** A rolling fold per key: the running value after each record, in arrival order, with the record's time. */
export function referenceRolling<T, R>(
  records: ReadonlyArray<RefRecord<T>>,
  fold: (running: R | undefined, value: T) => R,
): Array<{ key: string; value: R; timestamp: number }> {
  const running = new Map<string, R>();
  return records.map((r) => {
    const value = fold(running.get(r.key), r.value);
    running.set(r.key, value);
    return { key: r.key, value, timestamp: r.timestamp };
  });
}

/**
 * A window join: for every firing of the union of both sides (side 0 left, 1 right; lateness 0,
 * late records dropped), `fn(left, right)` for each pair, left records in arrival order, then right.
 */
export function referenceWindowJoin<A, B, O>(
  records: ReadonlyArray<RefRecord<A | B>>,
  watermarks: readonly number[],
  spec: WindowSpec,
  fn: (left: A, right: B) => O,
): Array<{ value: O; timestamp: number | undefined }> {
  const tagged = records.map((r) => ({ ...r, value: { side: r.side ?? 0, value: r.value } }));
  const out: Array<{ value: O; timestamp: number | undefined }> = [];
  for (const f of referenceWindows(tagged, watermarks, spec, 0).firings) {
    const left = f.elements.filter((e) => e.side === 0).map((e) => e.value as A);
    const right = f.elements.filter((e) => e.side !== 0).map((e) => e.value as B);
    for (const l of left) for (const r of right) out.push({ value: fn(l, r), timestamp: f.timestamp });
  }
  return out;
}

/**
 * An interval join: records at or behind the watermark are late (dropped); every pair of other
 * records of the same key with `l.ts + lower <= r.ts <= l.ts + upper` is emitted when the later one
 * arrives (pairs of one arrival in the other side's arrival order), with time `max(l.ts, r.ts)`.
 */
export function referenceIntervalJoin<A, B>(
  records: ReadonlyArray<RefRecord<A | B>>,
  watermarks: readonly number[],
  lower: number,
  upper: number,
): { pairs: Array<{ left: A; right: B; timestamp: number }>; late: number } {
  const wm = steps(watermarks);
  const accepted: Array<RefRecord<A | B>> = [];
  const pairs: Array<{ left: A; right: B; timestamp: number }> = [];
  let late = 0;
  records.forEach((r, at) => {
    if (r.timestamp <= wm[at]!) {
      late++;
      return;
    }
    const side = r.side ?? 0;
    for (const o of accepted) {
      if (o.key !== r.key || (o.side ?? 0) === side) continue;
      const [l, rr] = side === 0 ? [r, o] : [o, r];
      if (l.timestamp + lower <= rr.timestamp && rr.timestamp <= l.timestamp + upper) {
        pairs.push({ left: l.value as A, right: rr.value as B, timestamp: Math.max(l.timestamp, rr.timestamp) });
      }
    }
    accepted.push(r);
  });
  return { pairs, late };
}
