/**
 * The anomaly detector: a keyed process function that keeps a service's recent window statistics
 * in keyed list state and raises an `Alert` when a window's p99 or mean latency lies more than
 * `threshold` standard deviations above those of the windows before it.
 */
import { Duration, type KeyedContext, type KeyedProcessFunction } from "sage-temporal";
import type { WindowStats } from "./statistics.js";

/** The metrics a window is scored on. */
export type ScoredMetric = "p99" | "mean";

/** A window whose latency is out of line with the service's recent windows. */
export interface Alert {
  service: string;
  window: { start: number; end: number };
  metric: ScoredMetric;
  /** The window's value of `metric`, ms. */
  value: number;
  /** Mean and standard deviation of `metric` over the previous windows (`stddev` after the floor). */
  mean: number;
  stddev: number;
  /** `(value - mean) / stddev`, rounded to 0.01. */
  z: number;
}

/** What the detector keeps per window in state: only what it scores. */
export interface Baseline {
  end: number;
  p99: number;
  mean: number;
}

/** Tuning of the detector. */
export interface DetectorOptions {
  /** A z-score above this raises an alert. */
  threshold: number;
  /** Windows needed before the first score. */
  minHistory: number;
  /** Windows kept (the most recent). */
  maxHistory: number;
  /** Windows with fewer requests are neither scored nor kept: their p99 is the tail of a handful. */
  minCount: number;
  /**
   * The standard deviation is at least this share of the mean: sliding windows overlap, so a
   * steady service's recent windows barely differ, and without a floor any ripple is an outlier.
   */
  minRelativeStddev: number;
  /** The history expires after this long without a window (processing time): a service that went quiet starts over. */
  stateTtl: Duration;
}

/** The defaults: z above 4 against at least 5 (at most 30) previous windows of 50 requests or more. */
export const DEFAULT_DETECTOR_OPTIONS: DetectorOptions = {
  threshold: 4,
  minHistory: 5,
  maxHistory: 30,
  minCount: 200,
  minRelativeStddev: 0.15,
  stateTtl: Duration.ofHours(1),
};

const METRICS: readonly ScoredMetric[] = ["p99", "mean"];

/** Mean and (population) standard deviation of `values`. */
function moments(values: number[]): { mean: number; stddev: number } {
  const mean = values.reduce((s, v) => s + v, 0) / values.length;
  const variance = values.reduce((s, v) => s + (v - mean) ** 2, 0) / values.length;
  return { mean, stddev: Math.sqrt(variance) };
}

const round2 = (x: number): number => Math.round(x * 100) / 100;

/** The alerts `stats` raises against `history` (oldest first); pure, so a reference can run it too. */
export function score(stats: WindowStats, history: readonly Baseline[], options: DetectorOptions = DEFAULT_DETECTOR_OPTIONS): Alert[] {
  if (stats.count < options.minCount || history.length < options.minHistory) return [];
  const alerts: Alert[] = [];
  for (const metric of METRICS) {
    const { mean, stddev } = moments(history.map((b) => b[metric]));
    const floored = Math.max(stddev, mean * options.minRelativeStddev);
    const z = (stats[metric] - mean) / floored;
    if (z > options.threshold) {
      alerts.push({
        service: stats.service,
        window: { start: stats.start, end: stats.end },
        metric,
        value: stats[metric],
        mean: round2(mean),
        stddev: round2(floored),
        z: round2(z),
      });
    }
  }
  return alerts;
}

/** The history after `stats`: it joins the most recent windows, unless it is too small to say anything. */
export function remember(stats: WindowStats, history: readonly Baseline[], options: DetectorOptions = DEFAULT_DETECTOR_OPTIONS): Baseline[] {
  if (stats.count < options.minCount) return [...history];
  return [...history, { end: stats.end, p99: stats.p99, mean: stats.mean }].slice(-options.maxHistory);
}

/**
 * Scores each window of a service against the service's previous windows (keyed list state
 * "recent", with a TTL). Windows of a service arrive in the order they fired, which is the order of
 * their end, so the history is always the windows before.
 */
export class AnomalyDetector implements KeyedProcessFunction<string, WindowStats, Alert> {
  private readonly options: DetectorOptions;

  constructor(options: Partial<DetectorOptions> = {}) {
    this.options = { ...DEFAULT_DETECTOR_OPTIONS, ...options };
  }

  processElement(stats: WindowStats, ctx: KeyedContext<string, Alert>): void {
    const recent = ctx.state.list<Baseline>("recent", { ttlMs: this.options.stateTtl.toMillis() });
    const history = recent.get();
    for (const alert of score(stats, history, this.options)) ctx.emit(alert);
    recent.update(remember(stats, history, this.options));
  }
}
