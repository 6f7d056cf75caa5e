/**
 * The watermark of a streaming keyed stage (after Flink's `StatusWatermarkValve`): the largest
 * event time seen per origin (a source `topic:partition`), combined by minimum over the origins
 * that are not idle, minus the out-of-orderness bound, minus 1. Carried from unit to unit.
 */
import type { WatermarkSpec } from "../../core/api/time.js";
import type { LogicalNode } from "../../core/plan/logical.js";

/** The event time per origin of one stage, and the watermark it gives. */
export class WatermarkValve {
  /** The largest event time per origin, and `@origin`: the processing time at which it last moved. */
  readonly eventTime: Record<string, number>;
  /** Null: the keyed operators read no event time, so there is no watermark. */
  readonly bound: number | null;
  private readonly idlenessMs: number;
  private cached: number | null = null;

  /**
   * `carried`: the event time the stage had after its last unit; `origins`: the source partitions
   * whose minimum it is; `now`: the unit's processing time (idleness is measured against it).
   */
  constructor(
    carried: Record<string, number> | undefined,
    private readonly origins: readonly string[],
    specs: ReadonlyArray<WatermarkSpec | null>,
    private readonly now: number,
  ) {
    this.eventTime = { ...carried };
    const bounds = specs.filter((s) => s !== null);
    this.bound = bounds.length === 0 ? null : Math.max(...bounds.map((s) => s.outOfOrdernessMs));
    this.idlenessMs = Math.min(...specs.map((s) => s?.idlenessMs ?? Infinity));
  }

  /** The watermark specs of the inputs of keyed operators `nodes`. */
  static specsOf(nodes: readonly LogicalNode[]): Array<WatermarkSpec | null> {
    return nodes.flatMap((n) => n.eventTime ?? []);
  }

  /** Raises `origin`'s event time to `t` (no-op when not later); `at`: when it was seen, for idleness. */
  raise(origin: string, t: number, at?: number): void {
    if (this.eventTime[origin]! >= t) return;
    this.eventTime[origin] = t;
    if (at !== undefined) this.eventTime[`@${origin}`] = at;
    this.cached = null;
  }

  /**
   * The watermark now. With `withIdleness`, origins whose event time stood still for that long are
   * left out; when all are, the largest known event time counts (as Flink's valve does).
   */
  watermark(): number {
    if (this.cached !== null) return this.cached;
    const active = (o: string): boolean => this.idlenessMs === Infinity || this.now - (this.eventTime[`@${o}`] ?? -Infinity) <= this.idlenessMs;
    let least = Infinity;
    let most = -Infinity;
    let live = 0;
    for (const o of this.origins) {
      const t = this.eventTime[o] ?? -Infinity;
      if (t > most) most = t;
      if (!active(o)) continue;
      live++;
      if (t < least) least = t;
    }
    this.cached = (live > 0 ? least : most) - (this.bound ?? 0) - 1;
    return this.cached;
  }
}
