/**
 * The analytics job as plain TypeScript over an array, with no engine: the windows each event
 * belongs to, the statistics of each window, and the alerts the detector raises over them. The
 * example's test holds the job's output against it.
 */
import { remember, score, DEFAULT_DETECTOR_OPTIONS, type Alert, type Baseline, type DetectorOptions } from "./anomaly-detector.js";
import { StatisticsAggregator, type MetricEvent, type StatisticsAccumulator, type WindowStats } from "./statistics.js";
import type { InjectedAnomaly } from "./traffic.js";

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
  return [...accs.values()].map((w) => ({ service: w.service, start: w.start, end: w.start + WINDOW.sizeMs, ...agg.getResult(w.acc) })).sort(byWindow);
}

/** Service, then window end: the order `referenceStats` returns. */
export function byWindow(a: { service: string; end: number }, b: { service: string; end: number }): number {
  return a.service < b.service ? -1 : a.service > b.service ? 1 : a.end - b.end;
}

/** Service, window end, then metric. */
export function byAlert(a: Alert, b: Alert): number {
  return (
    byWindow({ service: a.service, end: a.window.end }, { service: b.service, end: b.window.end }) || (a.metric < b.metric ? -1 : a.metric > b.metric ? 1 : 0)
  );
}

/** The injected anomalies no alert names, and the alerts on normal traffic (whose window holds no anomaly of their service). */
export function matchAlerts(alerts: readonly Alert[], anomalies: readonly InjectedAnomaly[]): { missed: InjectedAnomaly[]; unexpected: Alert[] } {
  const overlaps = (x: Alert, a: InjectedAnomaly) => x.service === a.service && x.window.start < a.end && a.start < x.window.end;
  return { missed: anomalies.filter((a) => !alerts.some((x) => overlaps(x, a))), unexpected: alerts.filter((x) => !anomalies.some((a) => overlaps(x, a))) };
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

/** What `compareWindows` found: windows equal to the reference, windows within its bounds, and every difference. */
export interface WindowComparison {
  exact: number;
  bounded: number;
  problems: string[];
}

const windowId = (s: WindowStats): string => `${s.service}@${new Date(s.end).toISOString()}`;

/**
 * Holds a job's window statistics against the reference over the same events. A window must equal
 * the reference's; one that holds an event further behind than the watermark bound (which may have
 * come after some of its windows fired) is only bounded: its count between the reference without
 * such events and with them, its latencies within the full reference's. Every window ending at or
 * before `firedThrough` that holds an on-time event must be there, and none twice.
 */
export function compareWindows(got: readonly WindowStats[], events: readonly MetricEvent[], firedThrough = Infinity): WindowComparison {
  const lateness = latenessOf(events);
  const onTime = new Map(referenceStats(events.filter((_, i) => lateness[i]! <= WINDOW.outOfOrdernessMs)).map((s) => [windowId(s), s]));
  const all = new Map(referenceStats(events).map((s) => [windowId(s), s]));
  const gotIds = new Set(got.map(windowId));
  const problems: string[] = [];
  if (gotIds.size !== got.length) problems.push(`${got.length - gotIds.size} windows emitted twice`);
  for (const [id, s] of onTime) if (s.end <= firedThrough && !gotIds.has(id)) problems.push(`window ${id} is missing`);
  const result = { exact: 0, bounded: 0, problems };
  for (const s of got) {
    const upper = all.get(windowId(s));
    const lower = onTime.get(windowId(s));
    if (!upper) problems.push(`window ${windowId(s)} holds no event`);
    else if (lower?.count === upper.count) {
      if (JSON.stringify(s, Object.keys(upper)) !== JSON.stringify(upper))
        problems.push(`window ${windowId(s)}: ${JSON.stringify(s)}, reference ${JSON.stringify(upper)}`);
      result.exact++;
    } else {
      if (s.count < (lower?.count ?? 1) || s.count > upper.count || s.min < upper.min || s.max > upper.max) {
        problems.push(
          `window ${windowId(s)}: ${s.count} events in ${s.min}..${s.max} ms, reference ${lower?.count ?? 0}..${upper.count} in ${upper.min}..${upper.max}`,
        );
      }
      result.bounded++;
    }
  }
  return result;
}
