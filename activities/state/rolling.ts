/**
 * Rolling reduce and aggregate of a keyed stream (Flink's `KeyedStream.reduce`): one running value
 * per key under `STATE.rolling`; every record updates it and emits it (reduce: the running value;
 * aggregate: `getResult` of the accumulator) with the record's event time, in arrival order. With
 * lineage, each output names the key's inputs so far (their summary kept beside the running value).
 */
import type { StateBackend } from "./backend.js";
import type { InputLineage } from "./input-lineage.js";
import type { KeyedElement, KeyedOperator, KeyedOutput } from "./keyed-operator.js";
import { STATE } from "./state-names.js";
import type { Aggregate, Reduce } from "./user-functions.js";

/** A rolling reduce (`step` = the reduce) or aggregate (`step` = add, `result` = getResult). */
export class RollingOperator implements KeyedOperator {
  readonly lateDropped = 0;
  readonly lateSide = 0;

  private constructor(
    private readonly backend: StateBackend,
    private readonly step: (acc: unknown, value: unknown) => unknown,
    private readonly result: ((acc: unknown) => unknown) | undefined,
    private readonly lineage: InputLineage | null,
  ) {}

  /** `reduce(running, value)` per record; the first record of a key is its running value. */
  static reduce(backend: StateBackend, reduce: Reduce, lineage: InputLineage | null = null): RollingOperator {
    return new RollingOperator(backend, (acc, value) => (acc === undefined ? value : reduce(acc, value)), undefined, lineage);
  }

  /** `add(value, accumulator)` per record (a new accumulator for a key's first), emitting `getResult`. */
  static aggregate(backend: StateBackend, agg: Aggregate, lineage: InputLineage | null = null): RollingOperator {
    return new RollingOperator(
      backend,
      (acc, value) => agg.add(value, acc === undefined ? agg.createAccumulator() : acc),
      (acc) => agg.getResult(acc),
      lineage,
    );
  }

  element(el: KeyedElement, _ctx: unknown, out: KeyedOutput): void {
    const acc = this.step(this.backend.get(el.keyGroup, el.key, STATE.rolling, ""), el.value);
    this.backend.put(el.keyGroup, el.key, STATE.rolling, "", acc);
    const value = this.result ? this.result(acc) : acc;
    if (this.lineage === null) return out.emit(value, el.timestamp);
    this.lineage.note(el.keyGroup, el.key, "");
    out.emit(value, el.timestamp, { key: el.key, window: null, summary: this.lineage.load(el.keyGroup, el.key, "")! });
  }

  advanceWatermark(): void {}

  advanceProcessingTime(): void {}

  nextProcessingTimer(): null {
    return null;
  }
}
