/** Errors of `sage whatif`. */
import { SageError } from "../../core/errors.js";

/** A what-if asked for input Kafka no longer holds (retention or a deleteRecords removed it), and the job's retained copy does not reach back that far either. */
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
    /** The first offset of the job's retained copy (`whatif.retain`) of the partition; null: it keeps none. */
    readonly firstRetained: number | null = null,
  ) {
    const first = firstRetained === null ? firstHeld : Math.min(firstHeld, firstRetained);
    super(
      "RANGE_UNAVAILABLE",
      `the what-if range of ${topic}[${partition}] starts at ${requested}, which is no longer available: ` +
        `the first offset still held is ${firstHeld}, ` +
        (firstRetained === null
          ? "and the job keeps no copy of it (whatif.retain)"
          : `and the job's retained copy (whatif.retain) starts at offset ${firstRetained}`) +
        ` (give --from ${partition}:${first} or later)`,
      { input: true },
    );
  }
}

/** A what-if without `--base` compares against the job's own outputs, and some of those of the range are no longer held. */
export class RecordedOutputsUnavailableError extends SageError {
  constructor(
    /** The output topic (a sink's, or the dead-letter topic) ... */
    readonly topic: string,
    /** ... and partition whose head was deleted. */
    readonly partition: number,
    /** The first offset it still holds. */
    readonly firstHeld: number,
  ) {
    super(
      "RECORDED_OUTPUTS_UNAVAILABLE",
      `the job's outputs for the what-if range may no longer be available: ${topic}[${partition}] holds offsets from ${firstHeld} only, ` +
        `and what was deleted can include outputs of the range (give --base <module the job runs> to compare against a re-run instead, or a later --from)`,
      { input: true },
    );
  }
}

/** A bounded job's what-if reads the file a split of the job read, and that file is gone or shorter than the split. */
export class InputUnavailableError extends SageError {
  constructor(
    /** The file ... */
    readonly path: string,
    /** ... of the job's split (`<stage>-<index>`). */
    readonly shard: string,
    /** Its size now, and the end of the split, when it is shorter (absent: the file is gone). */
    readonly size?: number,
    readonly end?: number,
  ) {
    super(
      "INPUT_UNAVAILABLE",
      size === undefined
        ? `split ${shard} of the job read ${path}, which is no longer available: a bounded job's what-if re-reads the files it read`
        : `split ${shard} of the job read ${path} up to byte ${String(end)}, but the file now has ${size} bytes: it changed since the job read it`,
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
