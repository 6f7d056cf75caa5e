/** Errors of `sage whatif`. */
import { SageError } from "../../core/errors.js";

/** A what-if asked for input Kafka no longer holds: retention (or a deleteRecords) removed it. */
export class RangeUnavailableError extends SageError {
  constructor(
    /** The source topic ... */
    readonly topic: string,
    /** ... and partition of the range. */
    readonly partition: number,
    /** Where the range asked to start: `offset <n>`, or the time it was given as. */
    readonly requested: string,
    /** The first offset the partition still holds (its log start offset). */
    readonly firstHeld: number,
  ) {
    super(
      "RANGE_UNAVAILABLE",
      `the what-if range of ${topic}[${partition}] starts at ${requested}, which is no longer available: ` +
        `the first offset still held is ${firstHeld} (Kafka's retention bounds what a what-if can re-run; give --from ${partition}:${firstHeld} or later)`,
      { input: true },
    );
  }
}

/** A pipeline `sage whatif` cannot re-run in process (keyed state, a bounded job). */
export class WhatifUnsupportedError extends SageError {
  constructor(message: string) {
    super("WHATIF_UNSUPPORTED", message, { input: true });
  }
}
