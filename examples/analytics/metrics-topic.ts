/** The streaming job's topics: creates them, and writes metrics events as the job reads them (key = service, record timestamp = event time). */
import type { KafkaClient } from "sage-temporal/client";
import type { MetricEvent } from "./statistics.js";

/** Creates each of `topics` that is missing, with `partitions`. */
export async function ensureTopics(kafka: KafkaClient, topics: readonly string[], partitions: number): Promise<void> {
  const admin = await kafka.admin();
  try {
    for (const topic of topics) await admin.ensureTopic(topic, partitions, { "retention.ms": "-1" });
  } finally {
    await admin.close();
  }
}

/** Creates `topic` with `partitions` if it is missing, then produces `events` in order. */
export async function produceMetrics(kafka: KafkaClient, topic: string, events: readonly MetricEvent[], partitions: number): Promise<void> {
  await ensureTopics(kafka, [topic], partitions);
  const producer = await kafka.producer();
  try {
    for (let i = 0; i < events.length; i += 10_000) {
      await producer.send(
        topic,
        events.slice(i, i + 10_000).map((e) => ({ key: e.service, value: JSON.stringify(e), timestamp: String(e.ts) })),
      );
    }
  } finally {
    await producer.close();
  }
}
