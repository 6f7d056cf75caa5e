/**
 * The SAGE Core real-time analytics job, bounded over a JSON Lines file of metrics events: per
 * service, latency statistics over 5-minute windows sliding every minute, and an alert when a
 * window is far out of line with the service's recent windows.
 *   job parameters: `input` (events), `stats` (window statistics out), `alerts` (alerts out).
 */
import { definePipeline, Duration, FileSink, FileSource, SlidingWindow, WatermarkStrategy, type DataStream } from "sage-temporal";
import { AnomalyDetector, type Alert } from "./anomaly-detector.js";
import { StatisticsAggregator, type MetricEvent, type WindowStats } from "./statistics.js";

/** How far out of order events may arrive before they are late. */
export const OUT_OF_ORDERNESS = Duration.ofSeconds(10);

/** The job between source and sinks, shared by the bounded and the streaming variant. */
export function analytics(events: DataStream<MetricEvent>): { stats: DataStream<WindowStats>; alerts: DataStream<Alert> } {
  const stats = events
    .assignTimestampsAndWatermarks(
      WatermarkStrategy.forBoundedOutOfOrderness<MetricEvent>(OUT_OF_ORDERNESS).withTimestampAssigner((e) => e.ts),
      {
        name: "event-time",
      },
    )
    .keyBy((e) => e.service, { name: "by-service" })
    .window(SlidingWindow.of(Duration.ofMinutes(5), Duration.ofMinutes(1)))
    .aggregate(new StatisticsAggregator(), (service, window, s): WindowStats => ({ service, start: window.start, end: window.end, ...s }), {
      name: "stats",
    });
  const alerts = stats.keyBy((s) => s.service, { name: "stats-by-service" }).process(new AnomalyDetector(), { name: "anomalies" });
  return { stats, alerts };
}

export default definePipeline("analytics", (env) => {
  const { stats, alerts } = analytics(env.fromSource(FileSource.jsonl<MetricEvent>(env.param("input")), { name: "metrics" }));
  stats.sink(FileSink.jsonl(env.param("stats")), { name: "stats-out" });
  alerts.sink(FileSink.jsonl(env.param("alerts")), { name: "alert-sink" });
});
