/**
 * Time windows of a keyed stream (tumbling, sliding, session), in event or processing time, with
 * Flink's semantics:
 *
 * - A record at event time `ts` belongs to the windows its assigner gives; it is late for window
 *   `w` when `w.end - 1 + allowedLateness <= watermark` (the watermark in effect before it). A
 *   record late for every one of its windows goes to the late-data tag, or is dropped; both are
 *   counted. Processing-time windows take `clock()` as the time and are never late.
 * - A window fires when the watermark reaches `w.end - 1` (processing time: when the clock does),
 *   emitting its result with output time `w.end - 1`. Windows fire in order of end, then key.
 * - With allowed lateness, a fired window's state is kept until the watermark reaches
 *   `w.end - 1 + allowedLateness`; each record arriving meanwhile fires it again at once, with
 *   the updated result.
 * - Sessions: a record's window is `[ts, ts + gap)`; windows of a key that overlap or touch merge
 *   (their states merge: reduce by the reduce, aggregate by `merge`, process lists concatenated in
 *   start order). A record is late when its window merges with no live session and is late itself.
 *
 * Each (key, window) holds its contents under `STATE.window` (namespace: the window's start; a
 * session's: `start,end` of the first window it grew from) and a timer at `end - 1` (and one at the
 * cleanup time when there is allowed lateness): they are entries, so they go to the changelog.
 */
import type { RecordContext } from "../../core/api/context.js";
import type { MaybePromise } from "../../core/api/functions.js";
import type { TimeDomain, TimeWindowSpec } from "../../core/api/windows.js";
import type { FiredTimer, StateBackend } from "./backend.js";
import { MissingTimestampError } from "./errors.js";
import type { KeyedElement, KeyedOperator, KeyedOutput } from "./keyed-operator.js";
import type { InputLineage } from "./input-lineage.js";
import { andThen, forEachInOrder, isPromiseLike } from "./maybe-async.js";
import { STATE } from "./state-names.js";
import type { FireTarget, WindowContents } from "./window-contents.js";
import { addToSessions, lastSlidingStart, tumblingStart, type Session } from "./windows.js";

/** How a time-window operator is configured. */
export interface TimeWindowConfig {
  /** Operator id, for error messages. */
  operator: string;
  spec: TimeWindowSpec;
  /** Event time only; processing-time windows have none. */
  allowedLatenessMs: number;
  /** Output tag of records too late for all their windows (null: dropped). */
  lateTag: string | null;
}

/** A keyed operator over time windows. */
export class TimeWindowOperator implements KeyedOperator {
  lateDropped = 0;
  lateSide = 0;
  private watermark = -Infinity;
  private readonly domain: TimeDomain;
  private readonly lateness: number;

  constructor(
    private readonly config: TimeWindowConfig,
    private readonly contents: WindowContents,
    private readonly backend: StateBackend,
    private readonly clock: () => number,
    private readonly lineage: InputLineage | null = null,
  ) {
    this.domain = config.spec.time;
    this.lateness = this.domain === "event" ? config.allowedLatenessMs : 0;
  }

  element(el: KeyedElement, ctx: RecordContext, out: KeyedOutput): MaybePromise<void> {
    const ts = this.timeOf(el);
    const spec = this.config.spec;
    if (spec.kind === "session") return this.sessionElement(el, ts, ctx, out);
    const size = spec.sizeMs;
    const slide = spec.kind === "sliding" ? spec.slideMs : size;
    const last = spec.kind === "sliding" ? lastSlidingStart(ts, slide, spec.offsetMs) : tumblingStart(ts, size, spec.offsetMs);
    let first = last;
    while (first - slide > ts - size) first -= slide;
    let accepted = false;
    let pending: MaybePromise<void> = undefined;
    for (let start = first; start <= last; start += slide) {
      const end = start + size;
      if (this.isLate(end)) continue;
      accepted = true;
      pending = isPromiseLike(pending) ? pending.then(() => this.addToWindow(el, start, end, ctx, out)) : this.addToWindow(el, start, end, ctx, out);
    }
    if (!accepted) this.late(el, out);
    return pending;
  }

  advanceWatermark(watermark: number, ctx: RecordContext, out: KeyedOutput): MaybePromise<void> {
    if (watermark > this.watermark) this.watermark = watermark;
    if (this.domain !== "event") return;
    return this.fireTimers("event", this.watermark, ctx, out);
  }

  advanceProcessingTime(now: number, ctx: RecordContext, out: KeyedOutput): MaybePromise<void> {
    if (this.domain !== "processing") return;
    return this.fireTimers("processing", now, ctx, out);
  }

  nextProcessingTimer(): number | null {
    return this.domain === "processing" ? this.backend.nextTimer("processing") : null;
  }

  private timeOf(el: KeyedElement): number {
    if (this.domain === "processing") return this.clock();
    if (el.timestamp === undefined)
      throw new MissingTimestampError(`window operator "${this.config.operator}" works in event time, but a record has no timestamp`);
    return el.timestamp;
  }

  /** Late for a window ending at `end`: its cleanup time is at or behind the watermark. */
  private isLate(end: number): boolean {
    return this.domain === "event" && end - 1 + this.lateness <= this.watermark;
  }

  private late(el: KeyedElement, out: KeyedOutput): void {
    if (this.config.lateTag !== null) {
      // A late record goes out alone: it names itself as its input.
      out.side(this.config.lateTag, el.value, this.lineage?.single(el.key));
      this.lateSide++;
    } else this.lateDropped++;
  }

  /** Adds a record to a tumbling or sliding window, sets its timers if it is new, fires it if it is already due. */
  private addToWindow(el: KeyedElement, start: number, end: number, ctx: RecordContext, out: KeyedOutput): MaybePromise<void> {
    // A tumbling or sliding window is named by its start alone: its size is fixed.
    const ns = String(start);
    if (this.contents.add(el.keyGroup, el.key, ns, el.value, el.side)) this.setTimers(el.keyGroup, el.key, ns, end);
    if (this.domain === "event" && end - 1 <= this.watermark) return this.fire(el.keyGroup, el.key, ns, start, end, ctx, out);
  }

  /** Timers of a window ending at `end`: the firing (unless already due) and the cleanup. */
  private setTimers(kg: number, key: string, ns: string, end: number): void {
    if (this.domain === "processing" || end - 1 > this.watermark) this.backend.registerTimer(this.domain, kg, key, ns, end - 1);
    if (this.lateness > 0) this.backend.registerTimer(this.domain, kg, key, ns, end - 1 + this.lateness);
  }

  private deleteTimers(kg: number, key: string, ns: string, end: number): void {
    this.backend.deleteTimer(this.domain, kg, key, ns, end - 1);
    if (this.lateness > 0) this.backend.deleteTimer(this.domain, kg, key, ns, end - 1 + this.lateness);
  }

  private fire(kg: number, key: string, ns: string, start: number, end: number, ctx: RecordContext, out: KeyedOutput): MaybePromise<void> {
    const target: FireTarget = { ctx, out, watermark: this.watermark };
    return this.contents.fire(kg, key, ns, { start, end }, end - 1, target);
  }

  private fireTimers(domain: TimeDomain, upTo: number, ctx: RecordContext, out: KeyedOutput): MaybePromise<void> {
    return forEachInOrder(
      () => this.backend.pollTimer(domain, upTo),
      (t) => this.onTimer(t, ctx, out),
    );
  }

  /** A timer at `end - 1` fires the window; one at `end - 1 + lateness` purges it (both, without lateness). */
  private onTimer(t: FiredTimer, ctx: RecordContext, out: KeyedOutput): MaybePromise<void> {
    const { keyGroup: kg, key, namespace: ns } = t;
    let window: { start: number; end: number } | undefined;
    if (this.config.spec.kind === "session") {
      const s = this.sessionsOf(kg, key).find((x) => x[2] === ns);
      window = s && { start: s[0], end: s[1] };
    } else {
      const start = Number(ns);
      window = { start, end: start + this.config.spec.sizeMs };
    }
    if (window === undefined) return;
    const { start, end } = window;
    const fired = t.ts === end - 1 ? this.fire(kg, key, ns, start, end, ctx, out) : undefined;
    if (t.ts !== end - 1 + this.lateness) return fired;
    return andThen(fired, () => this.purge(kg, key, ns));
  }

  private purge(kg: number, key: string, ns: string): void {
    this.contents.clear(kg, key, ns);
    if (this.config.spec.kind !== "session") return;
    const rest = this.sessionsOf(kg, key).filter((s) => s[2] !== ns);
    if (rest.length > 0) this.backend.put(kg, key, STATE.sessions, "", rest);
    else this.backend.remove(kg, key, STATE.sessions, "");
  }

  private sessionsOf(kg: number, key: string): Session[] {
    return (this.backend.get(kg, key, STATE.sessions, "") as Session[] | undefined) ?? [];
  }

  /** Adds a record to its key's sessions, merging the ones its window overlaps. */
  private sessionElement(el: KeyedElement, ts: number, ctx: RecordContext, out: KeyedOutput): MaybePromise<void> {
    if (this.config.spec.kind !== "session") return;
    const { keyGroup: kg, key } = el;
    const { sessions, merged, absorbed, previous } = addToSessions(this.sessionsOf(kg, key), ts, ts + this.config.spec.gapMs);
    if (previous === null && this.isLate(merged[1])) return this.late(el, out);
    const ns = merged[2];
    const unchanged = previous !== null && absorbed.length === 0 && previous[0] === merged[0] && previous[1] === merged[1];
    if (!unchanged) {
      for (const s of absorbed) {
        this.contents.merge(kg, key, ns, s[2]);
        this.deleteTimers(kg, key, s[2], s[1]);
      }
      if (previous !== null) this.deleteTimers(kg, key, ns, previous[1]);
      this.setTimers(kg, key, ns, merged[1]);
      this.backend.put(kg, key, STATE.sessions, "", sessions);
    }
    this.contents.add(kg, key, ns, el.value, el.side);
    if (this.domain === "event" && merged[1] - 1 <= this.watermark) return this.fire(kg, key, ns, merged[0], merged[1], ctx, out);
  }
}
