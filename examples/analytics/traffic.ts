/**
 * Synthetic but plausible request metrics for the analytics example, deterministic from a seed:
 * services with their own latency distribution and traffic, a daily traffic curve, events that
 * arrive a few seconds out of order, a few that arrive minutes late, and latency anomalies injected
 * at known times so the alerts can be checked against them.
 */
import type { MetricEvent } from "./statistics.js";

/** A latency anomaly the generator injected: `service`'s latencies times `factor` in `[start, end)`. */
export interface InjectedAnomaly {
  service: string;
  start: number;
  end: number;
  factor: number;
}

/** How a service behaves when nothing is wrong. */
export interface ServiceProfile {
  service: string;
  /** Median latency at average load, ms; latencies are log-normal around it. */
  medianMs: number;
  /** Log-normal shape: 0.3 is a tight service, 0.55 a spread-out one. */
  sigma: number;
  /** Requests per minute at average load. */
  ratePerMinute: number;
  /** Share of 5xx responses. */
  errorRate: number;
}

/** What to generate. */
export interface TrafficOptions {
  seed: number;
  services: number;
  /** Minutes of event time. */
  minutes: number;
  /** Event time of the first minute, ms (a whole minute). */
  startMs: number;
  anomalies: number;
  anomalyMinutes: number;
  anomalyFactor: number;
  /** Largest delay of an on-time event (within the 10 s watermark bound). */
  maxDisorderMs: number;
  /** Share of events that arrive 1 to 3 minutes late (behind the watermark). */
  lateFraction: number;
}

/** Defaults: 20 services for an hour, from 08:00 UTC, three anomalies of 3 minutes at ×8. */
export const DEFAULT_TRAFFIC: TrafficOptions = {
  seed: 16,
  services: 20,
  minutes: 60,
  startMs: Date.UTC(2026, 0, 15, 8),
  anomalies: 3,
  anomalyMinutes: 3,
  anomalyFactor: 8,
  maxDisorderMs: 4_000,
  lateFraction: 0.0005,
};

/** The generated stream, in arrival order, and what was injected into it. */
export interface Traffic {
  events: MetricEvent[];
  anomalies: InjectedAnomaly[];
  profiles: ServiceProfile[];
  /** Events that arrive minutes late. */
  late: number;
}

const NAMES = [
  ...["gateway", "auth", "sessions", "profile", "catalog", "search", "pricing", "inventory", "cart", "checkout"],
  ...["payments", "orders", "shipping", "notifications", "email", "recommendations", "reviews", "images", "ads", "geo"],
];
const MINUTE = 60_000;
const DAY = 24 * 60 * MINUTE;

/** mulberry32: a small seeded generator of numbers in [0, 1). */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A standard normal number (Box-Muller). */
function normal(rand: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
}

/** A Poisson count with mean `lambda` (Knuth; fine for the few hundred a minute here). */
function poisson(rand: () => number, lambda: number): number {
  const limit = Math.exp(-lambda);
  let n = 0;
  for (let p = rand(); p > limit; p *= rand()) n++;
  return n;
}

/** Load relative to the day's average: lowest at 02:00 UTC, highest at 14:00. */
export function loadAt(ts: number): number {
  return 1 + 0.5 * Math.cos((2 * Math.PI * ((ts % DAY) - 14 * 60 * MINUTE)) / DAY);
}

/** The services and how each behaves. */
function profilesOf(rand: () => number, services: number): ServiceProfile[] {
  return Array.from({ length: services }, (_, i) => ({
    service: i < NAMES.length ? NAMES[i]! : `${NAMES[i % NAMES.length]!}-${Math.floor(i / NAMES.length) + 1}`,
    medianMs: Math.round(Math.exp(Math.log(15) + rand() * Math.log(250 / 15))),
    sigma: 0.3 + rand() * 0.25,
    ratePerMinute: 60 + rand() * 90,
    errorRate: 0.002 + rand() * 0.02,
  }));
}

/** Anomalies on distinct services, spread over the run after a warm-up of 15 minutes (the detector needs history). */
function anomaliesOf(rand: () => number, profiles: ServiceProfile[], o: TrafficOptions): InjectedAnomaly[] {
  const order = profiles.map((p) => p.service);
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  const warmup = 15 * MINUTE;
  const slot = (o.minutes * MINUTE - warmup - (o.anomalyMinutes + 5) * MINUTE) / Math.max(1, o.anomalies);
  return order.slice(0, o.anomalies).map((service, k) => {
    const start = o.startMs + warmup + Math.floor(k * slot + rand() * Math.max(0, slot - o.anomalyMinutes * MINUTE));
    return { service, start, end: start + o.anomalyMinutes * MINUTE, factor: o.anomalyFactor };
  });
}

/** One service's requests of one minute, with the time each arrives. */
function minuteOf(rand: () => number, p: ServiceProfile, minuteStart: number, anomalies: InjectedAnomaly[], o: TrafficOptions) {
  const load = loadAt(minuteStart);
  const out: Array<{ event: MetricEvent; arrival: number; late: boolean }> = [];
  for (let n = poisson(rand, p.ratePerMinute * load); n > 0; n--) {
    const ts = minuteStart + Math.floor(rand() * MINUTE);
    const factor = anomalies.find((a) => a.service === p.service && a.start <= ts && ts < a.end)?.factor ?? 1;
    // Busier hours are a little slower.
    const latencyMs = Math.max(1, Math.round(p.medianMs * (0.8 + 0.2 * load) * Math.exp(p.sigma * normal(rand)) * factor));
    const status = rand() < p.errorRate ? (rand() < 0.7 ? 500 : 503) : 200;
    const late = rand() < o.lateFraction;
    const delay = late ? MINUTE + Math.floor(rand() * 2 * MINUTE) : Math.floor(rand() * o.maxDisorderMs);
    out.push({ event: { service: p.service, ts, latencyMs, status }, arrival: ts + delay, late });
  }
  return out;
}

/** The stream `options` describe, the same for the same options. */
export function generateTraffic(options: Partial<TrafficOptions> = {}): Traffic {
  const o = { ...DEFAULT_TRAFFIC, ...options };
  const rand = random(o.seed);
  const profiles = profilesOf(rand, o.services);
  const anomalies = anomaliesOf(rand, profiles, o);
  const all: Array<{ event: MetricEvent; arrival: number; late: boolean }> = [];
  for (let m = 0; m < o.minutes; m++) {
    for (const p of profiles) all.push(...minuteOf(rand, p, o.startMs + m * MINUTE, anomalies, o));
  }
  all.sort((a, b) => a.arrival - b.arrival); // stable: ties keep generation order
  return { events: all.map((a) => a.event), anomalies, profiles, late: all.filter((a) => a.late).length };
}
