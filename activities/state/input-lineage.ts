/**
 * Lineage inside a keyed operator: the source position of the record in flight, and the summary of
 * inputs (`InputSummary`) the operator keeps under `STATE.inputs` beside each window or running
 * value. Being a state entry, the summary changes with the record (undone if it fails), goes to the
 * changelog in the unit's transaction, and comes back with the state after a crash; a window's
 * output then carries the summary it had when it fired. Only streaming jobs with lineage on use it.
 */
import type { MaybePromise } from "../../core/api/functions.js";
import type { TimeWindow } from "../../core/api/windows.js";
import { addInput, emptySummary, mergeSummaries, type EmittedInputs, type InputSummary } from "../../core/plan/input-summary.js";
import type { StateBackend } from "./backend.js";
import type { KeyedOutput } from "./keyed-operator.js";
import { STATE } from "./state-names.js";
import type { FireTarget, WindowContents } from "./window-contents.js";

/** The input summaries of one keyed operator instance. */
export class InputLineage {
  /** The source position of the record in flight (`topic:partition`, offset); null: unknown, or no record (a timer). */
  current: [string, number] | null = null;

  constructor(private readonly backend: StateBackend) {}

  /** Adds the record in flight to the summary of (key, `ns`); returns the summary now. */
  note(kg: number, key: string, ns: string): InputSummary {
    const summary = addInput(this.load(kg, key, ns) ?? emptySummary(), this.current);
    this.backend.put(kg, key, STATE.inputs, ns, summary);
    return summary;
  }

  /** The summary of (key, `ns`), if it has one. */
  load(kg: number, key: string, ns: string): InputSummary | undefined {
    return this.backend.get(kg, key, STATE.inputs, ns) as InputSummary | undefined;
  }

  /** Folds the summary at `from` into `into` and deletes `from` (sessions merging). */
  merge(kg: number, key: string, into: string, from: string): void {
    const b = this.load(kg, key, from);
    if (b === undefined) return;
    const a = this.load(kg, key, into);
    this.backend.put(kg, key, STATE.inputs, into, a === undefined ? b : mergeSummaries(a, b));
    this.backend.remove(kg, key, STATE.inputs, from);
  }

  /** Deletes the summary of (key, `ns`). */
  clear(kg: number, key: string, ns: string): void {
    this.backend.remove(kg, key, STATE.inputs, ns);
  }

  /** The record in flight alone, as an emission's inputs (a keyed process function's output, a late record). */
  single(key: string): EmittedInputs {
    return { key, window: null, summary: addInput(emptySummary(), this.current) };
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
