/**
 * The streaming analytics job in one command, after `sage dev --kafka`: produces generated traffic
 * with injected anomalies to a fresh metrics topic, runs a worker and the shim in this process,
 * prints each alert once it is committed, and stops the job cleanly once every injected anomaly has
 * raised one (or on Ctrl-C).
 * Usage: `npx tsx examples/analytics/client.ts [minutes]` (default 60 minutes of traffic).
 */
import { KafkaShim, SageClient, StreamJob, createLogger, createSageWorker, kafkaClientOf, loadConfig, shimOptionsOf } from "sage-temporal/client";
import type { Alert } from "./anomaly-detector.js";
import { ensureTopics, produceMetrics } from "./metrics-topic.js";
import { matchAlerts } from "./reference.js";
import { generateTraffic } from "./traffic.js";

// Fresh topics per run: a second run's events would otherwise sit behind the first one's watermark, late.
const run = new Date().toISOString().replace(/\D/g, "").slice(0, 14);
process.env.ANALYTICS_METRICS_TOPIC ??= `metrics-${run}`;
process.env.ANALYTICS_STATS_TOPIC ??= `metrics-stats-${run}`;
process.env.ANALYTICS_ALERTS_TOPIC ??= `metrics-alerts-${run}`;
process.env.ANALYTICS_GROUP ??= `analytics-${run}`;
const { default: pipeline, TOPICS } = await import("./stream-pipeline.js");

const iso = (ms: number) => new Date(ms).toISOString().slice(11, 19);
const config = loadConfig();
const logger = createLogger(config.log.level);
const kafka = kafkaClientOf(config, logger);
const traffic = generateTraffic({ minutes: Number(process.argv[2] ?? 60) });
await ensureTopics(kafka, [TOPICS.stats, TOPICS.alerts], 1);
await produceMetrics(kafka, TOPICS.metrics, traffic.events, 2);
console.log(`${traffic.events.length} events (${traffic.late} late) -> ${TOPICS.metrics}; injected anomalies:`);
for (const a of traffic.anomalies) console.log(`  ${a.service}: latency x${a.factor} ${iso(a.start)}-${iso(a.end)} UTC`);

const worker = await createSageWorker({ pipeline, config, logger });
const running = worker.run();
const client = await SageClient.connect({ config });
const job = StreamJob.create(client, pipeline, { jobId: `analytics-${run}` });
const shim = new KafkaShim(job, kafka, shimOptionsOf(config), logger);
await shim.start();
console.log(`streaming job ${job.jobId}; alerts on ${TOPICS.alerts}:`);
let stopping = false;
process.once("SIGINT", () => (stopping = true));
try {
  const printed = new Set<string>();
  for (;;) {
    const alerts = (await kafka.readAll(TOPICS.alerts, { idleTimeoutMs: 1_000 })).map((m) => JSON.parse(m.value!.toString("utf8")) as Alert);
    for (const a of alerts) {
      const line = `  ${a.service} ${iso(a.window.start)}-${iso(a.window.end)}: ${a.metric} ${a.value} ms, z ${a.z} (mean ${a.mean}, stddev ${a.stddev})`;
      if (!printed.has(line)) console.log(line);
      printed.add(line);
    }
    if (stopping || matchAlerts(alerts, traffic.anomalies).missed.length === 0) break;
    await new Promise((r) => setTimeout(r, 2_000));
  }
  await job.stop(); // partition workflows finish what they accepted; the shim sees it and drains
  await shim.done;
  const result = await job.result();
  console.log(`stopped: ${result.records} events, ${result.counts["stats-out"]?.out ?? 0} windows, ${result.counts["alert-sink"]?.out ?? 0} alerts`);
} finally {
  await shim.stop();
  await client.close();
  await worker.shutdown();
  await running;
}
