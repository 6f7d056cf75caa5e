/**
 * Window assigners (SAGE Core `window(SlidingWindow(...))`): tumbling, sliding, session and count
 * windows, in event time (the default) or processing time. Each is a plain descriptor the plan
 * records; the keyed stage assigns and fires windows.
 */
import { PipelineDefinitionError } from "../errors.js";
import { millisOf, type DurationLike } from "./time.js";

/** Which clock a time window follows. */
export type TimeDomain = "event" | "processing";

/** A window as the plan records it. */
export type WindowSpec =
  | { kind: "tumbling"; sizeMs: number; offsetMs: number; time: TimeDomain }
  | { kind: "sliding"; sizeMs: number; slideMs: number; offsetMs: number; time: TimeDomain }
  | { kind: "session"; gapMs: number; time: TimeDomain }
  | { kind: "count"; size: number; slide: number };

/** A time window as the plan records it. */
export type TimeWindowSpec = Exclude<WindowSpec, { kind: "count" }>;

/** The bounds of a time window: `[start, end)`, ms since the epoch. Count windows: the first and last record's index + 1. */
export interface TimeWindow {
  readonly start: number;
  readonly end: number;
}

/** A window assigner: a descriptor of the windows a keyed stream is cut into. */
export interface WindowAssigner {
  readonly spec: WindowSpec;
}

/** A time-window assigner that can switch to processing time. */
abstract class TimeWindowAssigner implements WindowAssigner {
  abstract readonly spec: TimeWindowSpec;
  /** The same windows by the worker's clock (processing time), fired on durable workflow timers. */
  inProcessingTime(): WindowAssigner {
    return { spec: { ...this.spec, time: "processing" } };
  }
}

/** Fixed-size, non-overlapping windows: `[k*size + offset, (k+1)*size + offset)`. */
export class TumblingWindow extends TimeWindowAssigner {
  private constructor(readonly spec: WindowSpec & { kind: "tumbling" }) {
    super();
  }
  /** Windows of `size`, aligned to the epoch plus `offset`. */
  static of(size: DurationLike, offset: DurationLike = 0): TumblingWindow {
    const sizeMs = millisOf(size, "TumblingWindow.of: the size", 1);
    return new TumblingWindow({ kind: "tumbling", sizeMs, offsetMs: millisOf(offset, "TumblingWindow.of: the offset") % sizeMs, time: "event" });
  }
}

/** Windows of `size` starting every `slide`: a record belongs to `size / slide` of them. */
export class SlidingWindow extends TimeWindowAssigner {
  private constructor(readonly spec: WindowSpec & { kind: "sliding" }) {
    super();
  }
  /** Windows of `size` every `slide` (`slide` <= `size`). */
  static of(size: DurationLike, slide: DurationLike, offset: DurationLike = 0): SlidingWindow {
    const sizeMs = millisOf(size, "SlidingWindow.of: the size", 1);
    const slideMs = millisOf(slide, "SlidingWindow.of: the slide", 1);
    if (slideMs > sizeMs) throw new PipelineDefinitionError(`SlidingWindow.of: the slide (${slideMs} ms) is larger than the size (${sizeMs} ms)`);
    return new SlidingWindow({ kind: "sliding", sizeMs, slideMs, offsetMs: millisOf(offset, "SlidingWindow.of: the offset") % slideMs, time: "event" });
  }
}

/** Windows per key that close after `gap` without records; overlapping sessions merge. */
export class SessionWindow extends TimeWindowAssigner {
  private constructor(readonly spec: WindowSpec & { kind: "session" }) {
    super();
  }
  /** Sessions separated by at least `gap`. */
  static withGap(gap: DurationLike): SessionWindow {
    return new SessionWindow({ kind: "session", gapMs: millisOf(gap, "SessionWindow.withGap: the gap", 1), time: "event" });
  }
}

/** Windows of `size` records per key (every `slide` records when sliding); they fire when full. */
export class CountWindow implements WindowAssigner {
  private constructor(readonly spec: WindowSpec & { kind: "count" }) {}
  /** A window of the last `size` records, fired every `slide` records (default: `size`, tumbling). */
  static of(size: number, slide: number = size): CountWindow {
    for (const [what, n] of [
      ["size", size],
      ["slide", slide],
    ] as const) {
      if (!Number.isInteger(n) || n < 1) throw new PipelineDefinitionError(`CountWindow.of: the ${what} must be an integer >= 1, got ${String(n)}`);
    }
    if (slide > size) throw new PipelineDefinitionError(`CountWindow.of: the slide (${slide}) is larger than the size (${size})`);
    return new CountWindow({ kind: "count", size, slide });
  }
}
