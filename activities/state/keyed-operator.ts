/**
 * The contract of a keyed operator inside a stage run: records of one key-group range arrive one at
 * a time with their key, event time and the watermark in effect before them; the operator keeps
 * its state in a `StateBackend` and emits through a `KeyedOutput`. A record's state changes and
 * emissions take effect only when the record succeeds (`StateBackend.beginRecord`/`commitRecord`),
 * so a retried or dead-lettered record leaves nothing behind.
 */
import type { MaybePromise } from "../../core/api/functions.js";
import type { RecordContext } from "../../core/api/context.js";
import type { EmittedInputs } from "../../core/plan/input-summary.js";

/** One record entering a keyed operator. */
export interface KeyedElement {
  /** The encoded key (`encodeKey`): canonical JSON. */
  key: string;
  keyGroup: number;
  value: unknown;
  /** Event time, ms (undefined when the input has no timestamps). */
  timestamp: number | undefined;
  /** Which input: 0, or 1 for the right side of a join. */
  side: number;
}

/** Where a keyed operator's results go; buffered per record by the caller. `inputs`: what the result came from (lineage on). */
export interface KeyedOutput {
  /** To the main output, with the output's event time (a window's `end - 1`; undefined: none). */
  emit(value: unknown, timestamp?: number, inputs?: EmittedInputs): void;
  /** To the side output `tagId`. */
  side(tagId: string, value: unknown, inputs?: EmittedInputs): void;
}

/** A keyed operator instance over one key-group range. */
export interface KeyedOperator {
  /** Processes one record; the watermark was advanced to the one in effect before it. */
  element(el: KeyedElement, ctx: RecordContext, out: KeyedOutput): MaybePromise<void>;
  /** Advances the event-time clock to `watermark` (never backwards): fires event-time timers and windows at or below it. */
  advanceWatermark(watermark: number, ctx: RecordContext, out: KeyedOutput): MaybePromise<void>;
  /** Advances the processing-time clock to `now`: fires processing-time timers and windows at or below it. */
  advanceProcessingTime(now: number, ctx: RecordContext, out: KeyedOutput): MaybePromise<void>;
  /** The earliest processing-time timer, or null (the workflow sleeps until it). */
  nextProcessingTimer(): number | null;
  /** Records dropped as too late (no late-data tag), and records sent to the late-data tag. */
  readonly lateDropped: number;
  readonly lateSide: number;
}

/** One changed state entry, as the changelog carries it: the value's JSON, or null when deleted. */
export interface ChangelogEntry {
  /** The store's entry key (key group, key, state name, namespace): opaque, stable. */
  key: string;
  value: string | null;
}

/** Sizes a store reports for `sage status` and metrics. */
export interface StateSize {
  entries: number;
  bytes: number;
  timers: number;
}
