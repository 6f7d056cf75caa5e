/**
 * Count windows of a keyed stream (Flink's `countWindow`): they ignore time. Tumbling (`slide ==
 * size`): every `size` records of a key form a window, which fires and is purged. Sliding: every
 * `slide` records, a window of the key's last `size` records fires (the first ones hold fewer, as
 * Flink's count evictor gives). A window's bounds are record indexes per key: `[first, last + 1)`.
 * Its output time is the event time of the record that filled it. Partial windows never fire,
 * not even at the end of a bounded input (as Flink's `CountWindow`).
 */
import type { RecordContext } from "../../core/api/context.js";
import type { MaybePromise } from "../../core/api/functions.js";
import type { StateBackend } from "./backend.js";
import type { KeyedElement, KeyedOperator, KeyedOutput } from "./keyed-operator.js";
import { andThen } from "./maybe-async.js";
import { STATE } from "./state-names.js";
import type { WindowContents } from "./window-contents.js";

/** A keyed operator over count windows; `contents` must be a list for sliding windows. */
export class CountWindowOperator implements KeyedOperator {
  readonly lateDropped = 0;
  readonly lateSide = 0;
  private watermark = -Infinity;

  constructor(
    private readonly size: number,
    private readonly slide: number,
    private readonly contents: WindowContents,
    private readonly backend: StateBackend,
  ) {}

  element(el: KeyedElement, ctx: RecordContext, out: KeyedOutput): MaybePromise<void> {
    const { keyGroup: kg, key } = el;
    const count = ((this.backend.get(kg, key, STATE.count, "") as number | undefined) ?? 0) + 1;
    this.backend.putJson(kg, key, STATE.count, "", String(count));
    this.contents.add(kg, key, "", el.value, el.side);
    const tumbling = this.slide === this.size;
    if (!tumbling && count > this.size && count % this.size === 0) this.evict(kg, key);
    if (count % this.slide !== 0) return;
    const window = { start: Math.max(0, count - this.size), end: count };
    const fired = this.contents.fire(kg, key, "", window, el.timestamp, { ctx, out, watermark: this.watermark }, tumbling ? undefined : this.size);
    return tumbling ? andThen(fired, () => this.contents.clear(kg, key, "")) : fired;
  }

  /** Keeps a sliding window's list at most twice its size: trims it to the last `size` records every `size` records. */
  private evict(kg: number, key: string): void {
    const all = this.backend.get(kg, key, STATE.window, "") as unknown[];
    this.backend.putJson(kg, key, STATE.window, "", JSON.stringify(all.slice(-this.size)));
  }

  advanceWatermark(watermark: number): void {
    if (watermark > this.watermark) this.watermark = watermark;
  }

  advanceProcessingTime(): void {}

  nextProcessingTimer(): null {
    return null;
  }
}
