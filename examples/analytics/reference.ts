/**
 * The analytics job as plain TypeScript over an array, with no engine: the windows each event
 * belongs to, the statistics of each window, and the alerts the detector raises over them. The
 * example's test holds the job's output against it.
 */
import { remember, score, DEFAULT_DETECTOR_OPTIONS, type Alert, type Baseline, type DetectorOptions } from "./anomaly-detector.js";
import { StatisticsAggregator, type MetricEvent, type StatisticsAccumulator, type WindowStats } from "./statistics.js";

/** The job's event-time settings. */
export const WINDOW = { sizeMs: 5 * 60_000, slideMs: 60_000, outOfOrdernessMs: 10_000 } as const;

/** Starts of the sliding windows `[start, start + size)` holding `ts`, earliest first. */
export function windowStartsOf(ts: number, sizeMs: number = WINDOW.sizeMs, slideMs: number = WINDOW.slideMs): number[] {
  const last = ts - (((ts % slideMs) + slideMs) % slideMs);
  const starts: number[] = [];
  for (let start = last - sizeMs + slideMs; start <= last; start += slideMs) starts.push(start);
  return starts;
}

/**
 * How far each event lies behind the latest event time before it in the stream's order. An event
 * at most `outOfOrdernessMs` behind is on time for every window, whatever the split or partition
 * it is read from (their watermarks never lead the whole stream's); one further behind may be
 * late for the windows that have fired.
 */
export function latenessOf(events: readonly MetricEvent[]): number[] {
  let latest = -Infinity;
  return events.map((e) => {
    const behind = Math.max(0, latest - e.ts);
    latest = Math.max(latest, e.ts);
    return behind;
  });
}

/** Statistics of every window of every service over `events`, ordered by service, then window end. */
export function referenceStats(events: Iterable<MetricEvent>): WindowStats[] {
  const agg = new StatisticsAggregator();
  const accs = new Map<string, { service: string; start: number; acc: StatisticsAccumulator }>();
  for (const e of events) {
    for (const start of windowStartsOf(e.ts)) {
      const id = `${e.service}\u0000${start}`;
      const w = accs.get(id) ?? { service: e.service, start, acc: agg.createAccumulator() };
      accs.set(id, { ...w, acc: agg.add(e, w.acc) });
    }
  }
  return [...accs.values()]
    .map((w) => ({ service: w.service, start: w.start, end: w.start + WINDOW.sizeMs, ...agg.getResult(w.acc) }))
    .sort((a, b) => (a.service < b.service ? -1 : a.service > b.service ? 1 : a.end - b.end));
}

/** The alerts the detector raises over `stats`, each service's windows taken in order of their end. */
export function referenceAlerts(stats: readonly WindowStats[], options: DetectorOptions = DEFAULT_DETECTOR_OPTIONS): Alert[] {
  const history = new Map<string, Baseline[]>();
  const alerts: Alert[] = [];
  for (const s of [...stats].sort((a, b) => a.end - b.end || (a.service < b.service ? -1 : 1))) {
    const h = history.get(s.service) ?? [];
    alerts.push(...score(s, h, options));
    history.set(s.service, remember(s, h, options));
  }
  return alerts;
}
