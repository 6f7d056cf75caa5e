/**
 * Which windows a timestamp belongs to (Flink's assigners), how a window is named as a state
 * namespace, and how session windows merge. Pure arithmetic, no state.
 */
import type { TimeWindow } from "../../core/api/windows.js";

/** `a mod b` in [0, b), also for negative `a` (timestamps before the epoch). */
function mod(a: number, b: number): number {
  const r = a % b;
  return r < 0 ? r + b : r;
}

/** Start of the tumbling window of `size` (aligned to `offset`) holding `ts`: `ts - ((ts - offset) mod size)`. */
export function tumblingStart(ts: number, size: number, offset: number): number {
  return ts - mod(ts - offset, size);
}

/**
 * Start of the latest sliding window holding `ts` (windows of `size` start every `slide` from
 * `offset`); the others start `slide`, `2*slide`, ... earlier, while `start > ts - size`.
 */
export function lastSlidingStart(ts: number, slide: number, offset: number): number {
  return ts - mod(ts - offset, slide);
}

/** Every sliding window holding `ts`, earliest first. */
export function slidingWindows(ts: number, size: number, slide: number, offset: number): TimeWindow[] {
  const out: TimeWindow[] = [];
  const last = lastSlidingStart(ts, slide, offset);
  let first = last;
  while (first - slide > ts - size) first -= slide;
  for (let start = first; start <= last; start += slide) out.push({ start, end: start + size });
  return out;
}

/** The state namespace of a session window: `start,end` (tumbling and sliding windows use their start alone). */
export function windowNamespace(start: number, end: number): string {
  return `${start},${end}`;
}

/** A live session of a key: its bounds and the namespace its state lives in (kept across merges). */
export type Session = [start: number, end: number, stateNamespace: string];

/**
 * Adds the window `[start, end)` to a key's sessions (sorted by start). Windows merge when they
 * overlap or touch (`a.start <= b.end && a.end >= b.start`, as Flink's `TimeWindow.intersects`).
 * Returns the new session list, the session that now holds the window (its state namespace is the
 * earliest merged session's, or a new one), and the sessions merged into it (their states fold
 * into its namespace; its own previous bounds are `previous`, null when it is new).
 */
export function addToSessions(
  sessions: readonly Session[],
  start: number,
  end: number,
): { sessions: Session[]; merged: Session; absorbed: Session[]; previous: Session | null } {
  const overlapping: Session[] = [];
  const rest: Session[] = [];
  for (const s of sessions) (s[0] <= end && s[1] >= start ? overlapping : rest).push(s);
  if (overlapping.length === 0) {
    const fresh: Session = [start, end, windowNamespace(start, end)];
    return { sessions: insertSorted(rest, fresh), merged: fresh, absorbed: [], previous: null };
  }
  const keeper = overlapping[0]!;
  let lo = start;
  let hi = end;
  for (const s of overlapping) {
    lo = Math.min(lo, s[0]);
    hi = Math.max(hi, s[1]);
  }
  const merged: Session = [lo, hi, keeper[2]];
  return { sessions: insertSorted(rest, merged), merged, absorbed: overlapping.slice(1), previous: keeper };
}

function insertSorted(sessions: Session[], s: Session): Session[] {
  let i = sessions.length;
  while (i > 0 && sessions[i - 1]![0] > s[0]) i--;
  sessions.splice(i, 0, s);
  return sessions;
}
