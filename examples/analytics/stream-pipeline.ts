/**
 * The same analytics job fed from Kafka, as the SAGE Core design has it: metrics events on a topic,
 * window statistics and alerts on two others, exactly once together with the keyed state. A
 * streaming job: it runs until `sage stop`.
 *   ANALYTICS_METRICS_TOPIC (default metrics), ANALYTICS_STATS_TOPIC (metrics-stats),
 *   ANALYTICS_ALERTS_TOPIC (metrics-alerts), ANALYTICS_GROUP (analytics).
 */
import { definePipeline, KafkaSink, KafkaSource } from "sage-temporal";
import type { Alert } from "./anomaly-detector.js";
import { analytics } from "./pipeline.js";
import type { MetricEvent, WindowStats } from "./statistics.js";

/** Topics (every process of a job must see the same names: they are part of the plan). */
export const TOPICS = {
  metrics: process.env.ANALYTICS_METRICS_TOPIC ?? "metrics",
  stats: process.env.ANALYTICS_STATS_TOPIC ?? "metrics-stats",
  alerts: process.env.ANALYTICS_ALERTS_TOPIC ?? "metrics-alerts",
  group: process.env.ANALYTICS_GROUP ?? "analytics",
};

export default definePipeline("analytics-stream", (env) => {
  const { stats, alerts } = analytics(
    env.fromSource(KafkaSource.topic<MetricEvent>(TOPICS.metrics, { groupId: TOPICS.group, startFrom: "earliest" }), { name: "metrics" }),
  );
  stats.sink(KafkaSink.topic<WindowStats>(TOPICS.stats, { key: (s) => s.service }), { name: "stats-out" });
  alerts.sink(KafkaSink.topic<Alert>(TOPICS.alerts, { key: (a) => a.service }), { name: "alert-sink" });
});
