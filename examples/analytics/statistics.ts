/**
 * The metrics events and what a window makes of them: `StatisticsAggregator` counts, averages and
 * takes percentiles of a service's latencies over one window, with an accumulator of fixed size.
 */
import type { AggregateFunction } from "sage-temporal";

/** One request as a service reports it. */
export interface MetricEvent {
  service: string;
  /** Event time: when the request was served, ms since the epoch. */
  ts: number;
  /** Whole milliseconds. */
  latencyMs: number;
  /** HTTP status; 5xx counts as an error. */
  status: number;
}

/** The latency statistics of one window of one service (`StatisticsAggregator.getResult`). */
export interface LatencyStatistics {
  count: number;
  /** Mean latency, ms, rounded to 0.01. */
  mean: number;
  min: number;
  max: number;
  /** Nearest-rank percentiles from the histogram: within 1% of the exact ones. */
  p95: number;
  p99: number;
  /** Share of 5xx responses, rounded to 0.0001. */
  errorRate: number;
}

/** What the window stage emits: a service's statistics over `[start, end)`. */
export interface WindowStats extends LatencyStatistics {
  service: string;
  start: number;
  end: number;
}

/**
 * Latencies as a histogram of buckets 2% wide (bucket b holds [1.02^b, 1.02^(b+1))): at most ~560
 * buckets from 1 ms to a minute whatever the traffic, so the accumulator (keyed state, carried by
 * the changelog in a streaming job) stays small, and merging is adding counts, in any order.
 */
export interface StatisticsAccumulator {
  count: number;
  /** Exact: latencies are whole milliseconds. */
  sum: number;
  /** Null while empty (state must be JSON, which has no Infinity). */
  min: number | null;
  max: number | null;
  errors: number;
  /** Count per bucket index. */
  buckets: Record<string, number>;
}

/** `pick` of two bounds, either of which may be unset. */
function bound(a: number | null, b: number | null, pick: (x: number, y: number) => number): number | null {
  return a === null ? b : b === null ? a : pick(a, b);
}

const GROWTH = 1.02;
const LOG_GROWTH = Math.log(GROWTH);

/** The bucket of a latency (latencies under 1 ms share bucket 0). */
export function bucketOf(latencyMs: number): number {
  return Math.floor(Math.log(Math.max(latencyMs, 1)) / LOG_GROWTH);
}

/** Nearest-rank percentile `q` (0..1) of a non-empty histogram: the middle of the bucket holding that rank, kept within [min, max]. */
export function percentileOf(acc: StatisticsAccumulator & { min: number; max: number }, q: number): number {
  const rank = Math.max(1, Math.ceil(q * acc.count));
  const indexes = Object.keys(acc.buckets)
    .map(Number)
    .sort((a, b) => a - b);
  let seen = 0;
  for (const b of indexes) {
    seen += acc.buckets[String(b)]!;
    if (seen >= rank) return Math.min(acc.max, Math.max(acc.min, Math.round(GROWTH ** (b + 0.5) * 10) / 10));
  }
  return acc.max;
}

/** Count, mean, min, max, p95, p99 of latency and the error rate of a window (Flink's `AggregateFunction`, with `merge`). */
export class StatisticsAggregator implements AggregateFunction<MetricEvent, StatisticsAccumulator, LatencyStatistics> {
  createAccumulator(): StatisticsAccumulator {
    return { count: 0, sum: 0, min: null, max: null, errors: 0, buckets: {} };
  }

  add(e: MetricEvent, acc: StatisticsAccumulator): StatisticsAccumulator {
    const b = String(bucketOf(e.latencyMs));
    acc.count += 1;
    acc.sum += e.latencyMs;
    acc.min = Math.min(acc.min ?? e.latencyMs, e.latencyMs);
    acc.max = Math.max(acc.max ?? e.latencyMs, e.latencyMs);
    if (e.status >= 500) acc.errors += 1;
    acc.buckets[b] = (acc.buckets[b] ?? 0) + 1;
    return acc;
  }

  merge(a: StatisticsAccumulator, b: StatisticsAccumulator): StatisticsAccumulator {
    const buckets = { ...a.buckets };
    for (const [k, n] of Object.entries(b.buckets)) buckets[k] = (buckets[k] ?? 0) + n;
    return {
      count: a.count + b.count,
      sum: a.sum + b.sum,
      min: bound(a.min, b.min, Math.min),
      max: bound(a.max, b.max, Math.max),
      errors: a.errors + b.errors,
      buckets,
    };
  }

  /** Only ever called on a window that holds a record, so min and max are set. */
  getResult(acc: StatisticsAccumulator): LatencyStatistics {
    const filled = { ...acc, min: acc.min ?? 0, max: acc.max ?? 0 };
    return {
      count: acc.count,
      mean: Math.round((acc.sum / acc.count) * 100) / 100,
      min: filled.min,
      max: filled.max,
      p95: percentileOf(filled, 0.95),
      p99: percentileOf(filled, 0.99),
      errorRate: Math.round((acc.errors / acc.count) * 10_000) / 10_000,
    };
  }
}
