/**
 * The stateful bench's input: deterministic metrics events (service, event time, latency), the
 * partition each service lives on, and the producer that writes them, plus one flush event per
 * partition, into a Kafka topic. The same events feed Sage, Kafka Streams, Flink and the reference.
 */
import { Kafka, logLevel, type ConfigResourceTypes } from "kafkajs";
import type { KafkaClient, OutgoingMessage } from "../../connectors/kafka/client.js";

/** One input event; on the topic it is this JSON, with key = service and record timestamp = ts. */
export interface StatefulEvent {
  service: string;
  /** Event time, ms since the epoch. */
  ts: number;
  /** An integer in 1..1000 (0 only on flush events). */
  latency: number;
}

/** What `generateEvents` makes. */
export interface GenerateOptions {
  events: number;
  services: number;
  /** Seed of the pseudo-random generator: the same options give the same events. */
  seed: number;
  /** Event time of the first event (default `STATEFUL_EPOCH_MS`). */
  epochMs?: number;
  /** Event time the events span (default 200 s). */
  spanMs?: number;
  /** Largest step back in event time (default 2 s, below the 5 s out-of-orderness bound). */
  maxJitterMs?: number;
}

/** Key of the flush events, which close every window; no result carries it. */
export const FLUSH_SERVICE = "__flush";
/** Event time of the first event: 2026-01-01T00:00:00Z (a multiple of every window size). */
export const STATEFUL_EPOCH_MS = Date.UTC(2026, 0, 1);
/** How far the flush events lie after the last event. */
export const FLUSH_AFTER_MS = 3_600_000;

/** The service name of index `i`: `svc-0042`. */
export function serviceName(i: number): string {
  return `svc-${String(i).padStart(4, "0")}`;
}

/** The partition of a service: FNV-1a (32 bit) of its UTF-16 code units, modulo `partitions`; stable across processes and engines. */
export function partitionOf(service: string, partitions: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < service.length; i++) {
    h ^= service.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % partitions;
}

/** mulberry32: small, fast and good enough to spread keys and latencies; numbers in [0, 1). */
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

/**
 * Events in roughly increasing event time: event i sits at epoch + i·span/n, and one in ten steps
 * back by up to `maxJitterMs` (never before the epoch). Since every earlier event lies at or
 * before its own base time, no event is more than `maxJitterMs` behind any event before it, in
 * the whole stream and so in each partition. Services are uniform; latencies lean low (cube of a
 * uniform number), 1..1000.
 */
export function generateEvents(opts: GenerateOptions): StatefulEvent[] {
  const rand = random(opts.seed);
  const epoch = opts.epochMs ?? STATEFUL_EPOCH_MS;
  const span = opts.spanMs ?? 200_000;
  const jitter = opts.maxJitterMs ?? 2_000;
  const names = Array.from({ length: opts.services }, (_, i) => serviceName(i));
  const events: StatefulEvent[] = new Array(opts.events);
  for (let i = 0; i < opts.events; i++) {
    const base = epoch + Math.floor((i * span) / opts.events);
    const back = rand() < 0.1 ? Math.floor(rand() * jitter) : 0;
    const service = names[Math.floor(rand() * opts.services)]!;
    events[i] = { service, ts: Math.max(epoch, base - back), latency: 1 + Math.floor(rand() ** 3 * 1000) };
  }
  return events;
}

/** One flush event per partition, at the latest event time plus an hour: it moves every partition's watermark past every real window. */
export function flushEvents(events: readonly StatefulEvent[], partitions: number): Array<StatefulEvent & { partition: number }> {
  let last = 0;
  for (const e of events) last = Math.max(last, e.ts);
  return Array.from({ length: partitions }, (_, partition) => ({ service: FLUSH_SERVICE, ts: last + FLUSH_AFTER_MS, latency: 0, partition }));
}

/** The largest lateness in the stream: per partition, how far an event lies behind the latest event before it. */
export function maxLatenessMs(events: readonly StatefulEvent[], partitions: number): number {
  const latest = new Array<number>(partitions).fill(-Infinity);
  let worst = 0;
  for (const e of events) {
    const p = partitionOf(e.service, partitions);
    worst = Math.max(worst, latest[p]! - e.ts);
    latest[p] = Math.max(latest[p]!, e.ts);
  }
  return worst;
}

/**
 * Topic settings for records whose timestamps are event time: no time-based retention, and no
 * time-based segment rolling. The events' epoch lies months before the machine's clock, and with
 * the broker's defaults (7 days) the broker deletes the input while an engine still reads it (seen:
 * Kafka Streams silently skipped the first 60 s of event time when its log start moved).
 */
export const EVENT_TIME_TOPIC_CONFIG: ReadonlyArray<{ name: string; value: string }> = [
  { name: "retention.ms", value: "-1" },
  { name: "segment.ms", value: String(100 * 365 * 86_400_000) },
];

/** kafkajs's `ConfigResourceTypes.TOPIC` (the CommonJS package does not export the enum to ES modules). */
const TOPIC_RESOURCE = 2 as ConfigResourceTypes;

/** Creates `topic` with `partitions` and `EVENT_TIME_TOPIC_CONFIG`, or sets that config on the existing topic. */
export async function ensureEventTimeTopic(brokers: readonly string[], topic: string, partitions: number): Promise<void> {
  const admin = new Kafka({ clientId: "stateful-bench-admin", brokers: [...brokers], logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  try {
    const configEntries = [...EVENT_TIME_TOPIC_CONFIG];
    const created = await admin.createTopics({ topics: [{ topic, numPartitions: partitions, replicationFactor: 1, configEntries }], waitForLeaders: true });
    if (!created) await admin.alterConfigs({ validateOnly: false, resources: [{ type: TOPIC_RESOURCE, name: topic, configEntries }] });
  } finally {
    await admin.disconnect();
  }
}

/** The Kafka record of an event: key = service, timestamp = ts, the partition given explicitly. */
export function eventMessage(e: StatefulEvent, partition: number): OutgoingMessage {
  return {
    key: e.service,
    value: JSON.stringify({ service: e.service, ts: e.ts, latency: e.latency }),
    timestamp: String(e.ts),
    partition,
  };
}

/**
 * Creates `topic` with `partitions` (`ensureEventTimeTopic`) and writes `events` in order, each to `partitionOf` its service,
 * then one flush event per partition. Returns the records written and how long it took.
 */
export async function produceEvents(
  kafka: KafkaClient,
  topic: string,
  events: readonly StatefulEvent[],
  partitions: number,
): Promise<{ records: number; ms: number }> {
  const started = performance.now();
  await ensureEventTimeTopic(kafka.brokers, topic, partitions);
  const producer = await kafka.producer();
  try {
    for (let i = 0; i < events.length; i += 20_000) {
      await producer.send(
        topic,
        events.slice(i, i + 20_000).map((e) => eventMessage(e, partitionOf(e.service, partitions))),
      );
    }
    // Only after every event: the flush must be the last record of its partition.
    await producer.send(
      topic,
      flushEvents(events, partitions).map((e) => eventMessage(e, e.partition)),
    );
  } finally {
    await producer.close();
  }
  return { records: events.length + partitions, ms: performance.now() - started };
}
