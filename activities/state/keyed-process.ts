/**
 * Keyed process functions (Flink's `KeyedProcessFunction`): per record, the user's function sees
 * the key's state (`ctx.state`, with TTL) and timers (`ctx.timers`). Timers are per key and time,
 * set once however often registered; event-time ones fire when the watermark reaches them,
 * processing-time ones when the clock does, by time then key, calling `onTimer`. Emits carry the
 * record's event time, or an event timer's time (a processing timer's emits carry none). With
 * lineage, what `processElement` emits names the record it processed; what a timer emits names none.
 */
import type { OutputTag, RecordContext } from "../../core/api/context.js";
import type { MaybePromise } from "../../core/api/functions.js";
import type { KeyedStateStore, OnTimerContext, TimerService } from "../../core/api/state.js";
import type { TimeDomain } from "../../core/api/windows.js";
import type { FiredTimer, StateBackend } from "./backend.js";
import type { KeyedElement, KeyedOperator, KeyedOutput } from "./keyed-operator.js";
import { forEachInOrder } from "./maybe-async.js";
import { KeyedStateHandles, type KeyCursor } from "./state-handles.js";
import type { KeyedProcess } from "./user-functions.js";
import { outputNaming, type InputLineage } from "./input-lineage.js";

/** The one context object of an operator, pointed at the current record or timer (user code must not keep it). */
class ProcessContext implements OnTimerContext<unknown, unknown>, TimerService {
  rc!: RecordContext;
  out!: KeyedOutput;
  key: unknown;
  timestamp: number | undefined;
  domain: "event" | "processing" = "event";
  /** Output time of emits: the record's, an event timer's, or none. */
  emitTime: number | undefined;
  readonly timers: TimerService = this;

  constructor(
    readonly state: KeyedStateStore,
    private readonly cursor: KeyCursor,
    private readonly backend: StateBackend,
    private readonly clock: () => number,
    private readonly watermark: () => number,
  ) {}

  get operatorId(): string {
    return this.rc.operatorId;
  }
  get jobId(): string {
    return this.rc.jobId;
  }
  get params(): Readonly<Record<string, string>> {
    return this.rc.params;
  }
  get attempt(): number {
    return this.rc.attempt;
  }
  get logger(): RecordContext["logger"] {
    return this.rc.logger;
  }
  service<T>(name: string): Promise<T> {
    return this.rc.service<T>(name);
  }

  emit(value: unknown): void {
    this.out.emit(value, this.emitTime);
  }
  output<X>(tag: OutputTag<X>, value: X): void {
    this.out.side(tag.id, value);
  }

  currentWatermark(): number {
    return this.watermark();
  }
  currentProcessingTime(): number {
    return this.clock();
  }
  registerEventTime(ts: number): void {
    this.setTimer("event", ts, true);
  }
  registerProcessingTime(ts: number): void {
    this.setTimer("processing", ts, true);
  }
  deleteEventTime(ts: number): void {
    this.setTimer("event", ts, false);
  }
  deleteProcessingTime(ts: number): void {
    this.setTimer("processing", ts, false);
  }

  private setTimer(domain: TimeDomain, ts: number, on: boolean): void {
    const { keyGroup, key } = this.cursor;
    if (on) this.backend.registerTimer(domain, keyGroup, key, "", ts);
    else this.backend.deleteTimer(domain, keyGroup, key, "", ts);
  }
}

/** A keyed operator running a `KeyedProcessFunction`. */
export class KeyedProcessOperator implements KeyedOperator {
  readonly lateDropped = 0;
  readonly lateSide = 0;
  private watermark = -Infinity;
  private readonly cursor: KeyCursor = { keyGroup: 0, key: "null" };
  private readonly ctx: ProcessContext;

  constructor(
    private readonly fn: KeyedProcess,
    private readonly backend: StateBackend,
    clock: () => number,
    private readonly lineage: InputLineage | null = null,
  ) {
    const state = new KeyedStateHandles(backend, this.cursor, clock);
    this.ctx = new ProcessContext(state, this.cursor, backend, clock, () => this.watermark);
  }

  element(el: KeyedElement, rc: RecordContext, out: KeyedOutput): MaybePromise<void> {
    this.point(el.keyGroup, el.key, rc, this.lineage ? outputNaming(out, this.lineage.single(el.key)) : out);
    this.ctx.timestamp = el.timestamp;
    this.ctx.emitTime = el.timestamp;
    return this.fn.processElement(el.value, this.ctx);
  }

  advanceWatermark(watermark: number, rc: RecordContext, out: KeyedOutput): MaybePromise<void> {
    if (watermark > this.watermark) this.watermark = watermark;
    return this.fireTimers("event", this.watermark, rc, out);
  }

  advanceProcessingTime(now: number, rc: RecordContext, out: KeyedOutput): MaybePromise<void> {
    return this.fireTimers("processing", now, rc, out);
  }

  nextProcessingTimer(): number | null {
    return this.backend.nextTimer("processing");
  }

  private point(keyGroup: number, key: string, rc: RecordContext, out: KeyedOutput): void {
    this.cursor.keyGroup = keyGroup;
    this.cursor.key = key;
    this.ctx.key = JSON.parse(key);
    this.ctx.rc = rc;
    this.ctx.out = out;
  }

  private fireTimers(domain: TimeDomain, upTo: number, rc: RecordContext, out: KeyedOutput): MaybePromise<void> {
    return forEachInOrder(
      () => this.backend.pollTimer(domain, upTo),
      (t) => this.onTimer(t, domain, rc, out),
    );
  }

  private onTimer(t: FiredTimer, domain: TimeDomain, rc: RecordContext, out: KeyedOutput): MaybePromise<void> {
    if (this.fn.onTimer === undefined) return;
    this.point(t.keyGroup, t.key, rc, out);
    this.ctx.timestamp = t.ts;
    this.ctx.domain = domain;
    this.ctx.emitTime = domain === "event" ? t.ts : undefined;
    return this.fn.onTimer(t.ts, this.ctx);
  }
}
