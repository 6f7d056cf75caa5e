/**
 * Interval join of two keyed streams (Flink's `IntervalJoinOperator`): a left record `l` pairs
 * with every right record `r` of the same key with `l.ts + lower <= r.ts <= l.ts + upper`,
 * whichever arrives first. Each side's records wait in the key's buffer (`[ts, value]` in arrival
 * order) until the watermark makes further pairs impossible: a left record once the watermark
 * reaches `l.ts + upper`, a right one at `r.ts - lower` (an event timer per such time cleans up).
 * Records at or behind the watermark are late: dropped and counted. The result is every pair of
 * non-late records, each emitted when the later of the two arrives, with output time
 * `max(l.ts, r.ts)`; a new record meets the waiting ones in their arrival order. With lineage, a
 * waiting record keeps its source position, and each pair names its two records as its inputs.
 */
import type { RecordContext } from "../../core/api/context.js";
import type { MaybePromise } from "../../core/api/functions.js";
import type { IntervalJoinContext } from "../../core/api/state.js";
import type { FiredTimer, StateBackend } from "./backend.js";
import { MissingTimestampError } from "./errors.js";
import type { KeyedElement, KeyedOperator, KeyedOutput } from "./keyed-operator.js";
import { forEachInOrder } from "./maybe-async.js";
import { encodeStateValue } from "./state-codec.js";
import { STATE, stateLabel } from "./state-names.js";
import type { IntervalJoin } from "./user-functions.js";
import { outputNaming, type InputLineage } from "./input-lineage.js";
import { addInput, emptySummary, type EmittedInputs } from "../../core/plan/input-summary.js";

/** A waiting record; with lineage, its source position too. */
type Buffered = [ts: number, value: unknown, origin?: string, offset?: number];

const BUFFER = [STATE.joinLeft, STATE.joinRight] as const;

/** A keyed operator joining input 0 (left) and input 1 (right) within an interval of event time. */
export class IntervalJoinOperator implements KeyedOperator {
  lateDropped = 0;
  readonly lateSide = 0;
  private watermark = -Infinity;

  constructor(
    private readonly operator: string,
    private readonly lower: number,
    private readonly upper: number,
    private readonly fn: IntervalJoin,
    private readonly backend: StateBackend,
    private readonly lineage: InputLineage | null = null,
  ) {}

  element(el: KeyedElement, rc: RecordContext, out: KeyedOutput): MaybePromise<void> {
    const ts = el.timestamp;
    if (ts === undefined) throw new MissingTimestampError(`interval join "${this.operator}" works in event time, but a record has no timestamp`);
    if (ts <= this.watermark) {
      this.lateDropped++;
      return;
    }
    const side = el.side === 0 ? 0 : 1;
    const { keyGroup: kg, key } = el;
    const others = (this.backend.get(kg, key, BUFFER[1 - side]!, "") as Buffered[] | undefined) ?? [];
    const cleanup = this.cleanupTime(side, ts);
    if (cleanup > this.watermark) {
      const name = BUFFER[side];
      const at = this.lineage?.current;
      const position = at ? `,${JSON.stringify(at[0])},${at[1]}` : "";
      this.backend.appendJson(kg, key, name, "", `[${ts},${encodeStateValue(el.value, () => stateLabel(name))}${position}]`);
      this.backend.registerTimer("event", kg, key, String(side), cleanup);
    }
    let i = 0;
    const mine = this.lineage?.current ?? null;
    return forEachInOrder(
      () => {
        while (i < others.length && !this.pairs(side, ts, others[i]![0])) i++;
        return others[i++];
      },
      (other) => {
        const [ots, ovalue] = other;
        const named = this.lineage ? pairOutput(out, key, side === 0 ? [mine, positionOf(other)] : [positionOf(other), mine]) : out;
        return side === 0 ? this.join(el.value, ovalue, ts, ots, rc, named) : this.join(ovalue, el.value, ots, ts, rc, named);
      },
    );
  }

  /** When a record of `side` at `ts` can pair with no future record. */
  private cleanupTime(side: number, ts: number): number {
    return side === 0 ? ts + this.upper : ts - this.lower;
  }

  /** True when a record of `side` at `ts` pairs with a record of the other side at `other`. */
  private pairs(side: number, ts: number, other: number): boolean {
    const [l, r] = side === 0 ? [ts, other] : [other, ts];
    return l + this.lower <= r && r <= l + this.upper;
  }

  private join(left: unknown, right: unknown, lts: number, rts: number, rc: RecordContext, out: KeyedOutput): MaybePromise<void> {
    const time = Math.max(lts, rts);
    const ctx: IntervalJoinContext<unknown> = {
      operatorId: rc.operatorId,
      jobId: rc.jobId,
      params: rc.params,
      attempt: rc.attempt,
      logger: rc.logger,
      service: <T>(name: string) => rc.service<T>(name),
      leftTimestamp: lts,
      rightTimestamp: rts,
      emit: (value) => out.emit(value, time),
    };
    return this.fn(left, right, ctx);
  }

  advanceWatermark(watermark: number): void {
    if (watermark > this.watermark) this.watermark = watermark;
    for (let t = this.backend.pollTimer("event", this.watermark); t !== undefined; t = this.backend.pollTimer("event", this.watermark)) this.cleanup(t);
  }

  /** Drops the buffered records of the timer's side that can pair no more, and their other cleanup timers. */
  private cleanup(t: FiredTimer): void {
    const side = Number(t.namespace);
    const name = BUFFER[side]!;
    const buffered = (this.backend.get(t.keyGroup, t.key, name, "") as Buffered[] | undefined) ?? [];
    const keep = buffered.filter(([ts]) => this.cleanupTime(side, ts) > this.watermark);
    if (keep.length === buffered.length) return;
    for (const [ts] of buffered) {
      const at = this.cleanupTime(side, ts);
      if (at <= this.watermark && at !== t.ts) this.backend.deleteTimer("event", t.keyGroup, t.key, t.namespace, at);
    }
    if (keep.length > 0) this.backend.putJson(t.keyGroup, t.key, name, "", JSON.stringify(keep));
    else this.backend.remove(t.keyGroup, t.key, name, "");
  }

  advanceProcessingTime(): void {}

  nextProcessingTimer(): null {
    return null;
  }
}

/** A waiting record's source position, if it kept one. */
function positionOf(b: Buffered): [string, number] | null {
  return b[2] !== undefined && b[3] !== undefined ? [b[2], b[3]] : null;
}

/** `out` naming the pair's two records (left, right) as the inputs of what it emits. */
function pairOutput(out: KeyedOutput, key: string, pair: Array<[string, number] | null>): KeyedOutput {
  const summary = emptySummary();
  for (const at of pair) addInput(summary, at);
  const inputs: EmittedInputs = { key, window: null, summary };
  return outputNaming(out, inputs);
}
