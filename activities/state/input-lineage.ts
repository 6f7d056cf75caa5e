/**
 * Lineage inside a keyed operator: the source position of the record in flight, and the summary of
 * inputs (`InputSummary`) the operator keeps under `STATE.inputs` and `STATE.inputSample` beside
 * each window or running value. Being a state entry, the summary changes with the record (undone if it fails), goes to the
 * changelog in the unit's transaction, and comes back with the state after a crash; a window's
 * output then carries the summary it had when it fired. Only streaming jobs with lineage on use it.
 */
import type { MaybePromise } from "../../core/api/functions.js";
import type { TimeWindow } from "../../core/api/windows.js";
import { addInput, emptySummary, INPUT_SAMPLE, mergeSummaries, type EmittedInputs, type InputSummary } from "../../core/plan/input-summary.js";
import type { StateBackend } from "./backend.js";
import type { KeyedOutput } from "./keyed-operator.js";
import { STATE } from "./state-names.js";
import type { FireTarget, WindowContents } from "./window-contents.js";

/**
 * The counts entry of a summary, kept apart from its sample so that the per-record update parses
 * and writes a few numbers: `[n, origin, lowest, highest, origin, lowest, highest, ...]`.
 */
type Counts = Array<number | string>;

/**
 * The input summaries of one keyed operator instance. A summary is two entries: the counts
 * (`STATE.inputs`: how many, and per origin the offset range), updated per record, and the sample
 * (`STATE.inputSample`), appended to without parsing while the summary holds fewer than
 * `INPUT_SAMPLE` inputs, so a record of a full window costs one small parse and write.
 */
export class InputLineage {
  /** The source position of the record in flight (`topic:partition`, offset); null: unknown, or no record (a timer). */
  current: [string, number] | null = null;

  constructor(private readonly backend: StateBackend) {}

  /** Adds the record in flight to the summary of (key, `ns`). */
  note(kg: number, key: string, ns: string): void {
    const counts = (this.backend.get(kg, key, STATE.inputs, ns) as Counts | undefined) ?? [0];
    const n = counts[0] as number;
    counts[0] = n + 1;
    const at = this.current;
    if (at !== null) {
      const [origin, offset] = at;
      let i = 1;
      while (i < counts.length && counts[i] !== origin) i += 3;
      if (i >= counts.length) counts.push(origin, offset, offset);
      else {
        if (offset < (counts[i + 1] as number)) counts[i + 1] = offset;
        if (offset > (counts[i + 2] as number)) counts[i + 2] = offset;
      }
      // The sample: the known positions among the first INPUT_SAMPLE inputs.
      if (n < INPUT_SAMPLE) this.backend.appendJson(kg, key, STATE.inputSample, ns, `[${JSON.stringify(origin)},${offset}]`);
    }
    this.backend.putJson(kg, key, STATE.inputs, ns, JSON.stringify(counts));
  }

  /** The summary of (key, `ns`), if it has one. */
  load(kg: number, key: string, ns: string): InputSummary | undefined {
    const counts = this.backend.get(kg, key, STATE.inputs, ns) as Counts | undefined;
    if (counts === undefined) return undefined;
    const r: InputSummary["r"] = {};
    for (let i = 1; i + 2 < counts.length; i += 3) r[counts[i] as string] = [counts[i + 1] as number, counts[i + 2] as number];
    const s = (this.backend.get(kg, key, STATE.inputSample, ns) as InputSummary["s"] | undefined) ?? [];
    return { n: counts[0] as number, r, s };
  }

  /** Folds the summary at `from` into `into` and deletes `from` (sessions merging). */
  merge(kg: number, key: string, into: string, from: string): void {
    const b = this.load(kg, key, from);
    if (b === undefined) return;
    const a = this.load(kg, key, into);
    this.store(kg, key, into, a === undefined ? b : mergeSummaries(a, b));
    this.clear(kg, key, from);
  }

  /** Deletes the summary of (key, `ns`). */
  clear(kg: number, key: string, ns: string): void {
    this.backend.remove(kg, key, STATE.inputs, ns);
    this.backend.remove(kg, key, STATE.inputSample, ns);
  }

  /** The record in flight alone, as an emission's inputs (a keyed process function's output, a late record). */
  single(key: string): EmittedInputs {
    return { key, window: null, summary: addInput(emptySummary(), this.current) };
  }

  /** Writes a whole summary (its two entries). */
  private store(kg: number, key: string, ns: string, summary: InputSummary): void {
    const counts: Counts = [summary.n];
    for (const [origin, [lo, hi]] of Object.entries(summary.r)) counts.push(origin, lo, hi);
    this.backend.putJson(kg, key, STATE.inputs, ns, JSON.stringify(counts));
    if (summary.s.length > 0) this.backend.putJson(kg, key, STATE.inputSample, ns, JSON.stringify(summary.s));
    else this.backend.remove(kg, key, STATE.inputSample, ns);
  }
}

/** `out` with every emission naming `inputs`. */
export function outputNaming(out: KeyedOutput, inputs: EmittedInputs): KeyedOutput {
  return { emit: (value, timestamp) => out.emit(value, timestamp, inputs), side: (tag, value) => out.side(tag, value, inputs) };
}

/**
 * A window's contents with the summary of its inputs beside them: a record added notes its position,
 * sessions merging merge their summaries, and the window's results name the summary it has when it
 * fires. `counted`: count windows, whose bounds are record indexes, so the output names no window.
 */
export class LineagedContents implements WindowContents {
  constructor(
    private readonly inner: WindowContents,
    private readonly lineage: InputLineage,
    private readonly counted: boolean,
  ) {}

  add(kg: number, key: string, ns: string, value: unknown, side: number): boolean {
    this.lineage.note(kg, key, ns);
    return this.inner.add(kg, key, ns, value, side);
  }

  merge(kg: number, key: string, into: string, from: string): void {
    this.lineage.merge(kg, key, into, from);
    this.inner.merge(kg, key, into, from);
  }

  fire(kg: number, key: string, ns: string, window: TimeWindow, timestamp: number | undefined, target: FireTarget, last?: number): MaybePromise<void> {
    const summary = this.lineage.load(kg, key, ns);
    if (summary === undefined) return this.inner.fire(kg, key, ns, window, timestamp, target, last);
    const inputs: EmittedInputs = { key, window: this.counted ? null : { start: window.start, end: window.end }, summary };
    return this.inner.fire(kg, key, ns, window, timestamp, { ...target, out: outputNaming(target.out, inputs) }, last);
  }

  clear(kg: number, key: string, ns: string): void {
    this.lineage.clear(kg, key, ns);
    this.inner.clear(kg, key, ns);
  }
}
