/**
 * A Prometheus histogram that takes many observations under one label set at once: prom-client's
 * `Histogram.observe` validates and hashes the labels on every call (about 1 µs), too much per
 * record at streaming rates; this one finds the series once per call of `observeAll`.
 */
import type { Metric, Registry } from "prom-client";

/** One label set's buckets (not cumulative; the last slot is +Inf), sum and count. */
interface Series {
  labels: Record<string, string>;
  counts: number[];
  sum: number;
  count: number;
}

/** A histogram for per-record latencies, exposed like prom-client's (`_bucket`, `_sum`, `_count`). */
export class BulkHistogram<L extends string> {
  readonly type = "histogram";
  readonly aggregator = "sum";
  private series = new Map<string, Series>();

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly labelNames: readonly L[],
    private readonly buckets: readonly number[],
    registry: Registry,
  ) {
    // prom-client's registry needs only `name`, `get` and `reset`; its types name its own classes.
    registry.registerMetric(this as unknown as Metric);
  }

  /** Adds every value (finite ones) to the series of `labels`. */
  observeAll(labels: Record<L, string>, values: Iterable<number>): void {
    const key = this.labelNames.map((l) => labels[l]).join("\u0000");
    let s = this.series.get(key);
    if (!s) {
      s = { labels: { ...labels }, counts: new Array<number>(this.buckets.length + 1).fill(0), sum: 0, count: 0 };
      this.series.set(key, s);
    }
    const bounds = this.buckets;
    for (const v of values) {
      if (!Number.isFinite(v)) continue;
      let i = 0;
      while (i < bounds.length && v > bounds[i]!) i++;
      s.counts[i]!++;
      s.sum += v;
      s.count++;
    }
  }

  /** What prom-client's registry prints: cumulative buckets with `le`, then sum and count, per series. */
  get() {
    const values: Array<{ metricName: string; labels: Record<string, string | number>; value: number }> = [];
    for (const s of this.series.values()) {
      let acc = 0;
      this.buckets.forEach((le, i) => {
        acc += s.counts[i]!;
        values.push({ metricName: `${this.name}_bucket`, labels: { ...s.labels, le }, value: acc });
      });
      values.push({ metricName: `${this.name}_bucket`, labels: { ...s.labels, le: "+Inf" }, value: s.count });
      values.push({ metricName: `${this.name}_sum`, labels: s.labels, value: s.sum });
      values.push({ metricName: `${this.name}_count`, labels: s.labels, value: s.count });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  /** Forgets every series. */
  reset(): void {
    this.series = new Map();
  }
}
