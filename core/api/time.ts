/**
 * Event time (SAGE Core `WatermarkStrategy.for_bounded_out_of_orderness`): durations, and the
 * watermark strategy a stream's timestamps and watermarks follow.
 */
import { PipelineDefinitionError } from "../errors.js";

/** A length of time; sizes and bounds take one or a number of milliseconds. */
export class Duration {
  private constructor(readonly millis: number) {}
  /** `ms` milliseconds. */
  static ofMillis(ms: number): Duration {
    return new Duration(ms);
  }
  /** `s` seconds. */
  static ofSeconds(s: number): Duration {
    return new Duration(s * 1_000);
  }
  /** `m` minutes. */
  static ofMinutes(m: number): Duration {
    return new Duration(m * 60_000);
  }
  /** `h` hours. */
  static ofHours(h: number): Duration {
    return new Duration(h * 3_600_000);
  }
  /** The duration in milliseconds. */
  toMillis(): number {
    return this.millis;
  }
}

/** A duration as milliseconds or a `Duration`. */
export type DurationLike = number | Duration;

/** Milliseconds of `d`; a definition-time error naming `what` when it is not a finite number >= `min`. */
export function millisOf(d: DurationLike, what: string, min = 0): number {
  const ms = typeof d === "number" ? d : d.toMillis();
  if (!Number.isFinite(ms) || ms < min || !Number.isInteger(ms)) {
    throw new PipelineDefinitionError(`${what} must be a whole number of milliseconds >= ${min}, got ${String(ms)}`);
  }
  return ms;
}

/** Reads a record's event time (ms since the epoch). */
export type TimestampAssigner<T> = (value: T, recordTimestamp: number | undefined) => number;

/** The watermark part of a strategy, as the plan records it. */
export interface WatermarkSpec {
  /** How far behind the largest timestamp seen the watermark trails (0: monotonous timestamps). */
  outOfOrdernessMs: number;
  /** A source partition without records for this long no longer holds the watermark back (null: never). */
  idlenessMs: number | null;
}

/**
 * How a stream gets timestamps and watermarks. The watermark in effect before a record is the
 * largest timestamp seen before it, minus the out-of-orderness bound, minus 1 (as in Flink); a
 * record at or behind it is late.
 */
export class WatermarkStrategy<T> {
  private constructor(
    readonly spec: WatermarkSpec,
    /** The timestamp assigner (absent: the source record's timestamp, Kafka sources only). */
    readonly assigner: TimestampAssigner<T> | undefined,
  ) {}

  /** Timestamps may arrive up to `bound` out of order. */
  static forBoundedOutOfOrderness<T>(bound: DurationLike): WatermarkStrategy<T> {
    return new WatermarkStrategy<T>({ outOfOrdernessMs: millisOf(bound, "forBoundedOutOfOrderness: the bound"), idlenessMs: null }, undefined);
  }

  /** Timestamps never decrease (a bound of 0). */
  static forMonotonousTimestamps<T>(): WatermarkStrategy<T> {
    return new WatermarkStrategy<T>({ outOfOrdernessMs: 0, idlenessMs: null }, undefined);
  }

  /** Reads each record's event time with `assigner` (ms since the epoch). */
  withTimestampAssigner<U extends T>(assigner: TimestampAssigner<U>): WatermarkStrategy<U> {
    return new WatermarkStrategy<U>(this.spec, assigner);
  }

  /** A source partition idle for `timeout` stops holding the watermark back. */
  withIdleness(timeout: DurationLike): WatermarkStrategy<T> {
    return new WatermarkStrategy<T>({ ...this.spec, idlenessMs: millisOf(timeout, "withIdleness: the timeout", 1) }, this.assigner);
  }
}
