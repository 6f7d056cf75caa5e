/**
 * The analytics example as a streaming job (`stream-pipeline.ts`) through `sage run` until
 * `sage stop`: `generate.ts --kafka` produces traffic with injected anomalies and late events, and
 * the window statistics and alerts read back with read_committed equal the reference, once each.
 * Real broker, real dev server.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { once } from "node:events";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { REPO, cliEnv, sageCli, sageCliBackground, testConfig, until } from "../../test/support/harness.js";
import { streamTopics, testBrokers, testKafka } from "../../test/support/kafka.js";
import type { KafkaClient } from "../../connectors/kafka/client.js";
import type { Alert } from "./anomaly-detector.js";
import { byAlert, byWindow, compareWindows, matchAlerts, referenceAlerts, referenceStats, WINDOW } from "./reference.js";
import type { MetricEvent, WindowStats } from "./statistics.js";
import type { InjectedAnomaly } from "./traffic.js";

/** The records of `topic`, parsed. */
async function readTopic<T>(kafka: KafkaClient, topic: string): Promise<T[]> {
  return (await kafka.readAll(topic, { idleTimeoutMs: 1_500 })).map((m) => JSON.parse(m.value!.toString("utf8")) as T);
}

test("sage run examples/analytics/stream-pipeline.ts: windows and alerts from a Kafka topic equal the reference, once each", async (t) => {
  const config = testConfig("analytics-stream");
  const topicNames = streamTopics("analytics");
  const topics = { metrics: topicNames.input, stats: `${topicNames.output}.stats`, alerts: `${topicNames.output}.alerts` };
  const env = {
    ...cliEnv(config),
    SAGE_KAFKA_BROKERS: testBrokers(),
    SAGE_KAFKA_DEAD_LETTER_TOPIC: topicNames.dlq,
    ANALYTICS_METRICS_TOPIC: topics.metrics,
    ANALYTICS_STATS_TOPIC: topics.stats,
    ANALYTICS_ALERTS_TOPIC: topics.alerts,
    ANALYTICS_GROUP: topicNames.group,
  };
  const kafka = testKafka();
  const admin = await kafka.admin();
  try {
    await admin.ensureTopic(topics.stats, 1, { "retention.ms": "-1" });
    await admin.ensureTopic(topics.alerts, 1, { "retention.ms": "-1" });
  } finally {
    await admin.close();
  }
  // One source partition: the watermark is then the whole stream's, as the reference's is.
  const anomaliesFile = join(config.dir, "anomalies.json");
  const generated = spawnSync(
    process.execPath,
    ["--import", "tsx", "examples/analytics/generate.ts", "--kafka", topics.metrics, "--partitions", "1", "--anomalies-out", anomaliesFile].concat([
      "--minutes",
      "30",
      "--services",
      "6",
      "--anomalies",
      "2",
      "--seed",
      "3",
    ]),
    { cwd: REPO, env: { ...process.env, ...env }, encoding: "utf8", timeout: 120_000 },
  );
  assert.equal(generated.status, 0, generated.stderr);
  const anomalies = JSON.parse(readFileSync(anomaliesFile, "utf8")) as InjectedAnomaly[];
  const events = await readTopic<MetricEvent>(kafka, topics.metrics); // in the order produced: one partition
  assert.equal(anomalies.length, 2);

  // A stream has no end: windows fire as the watermark passes them; the last minutes' wait for later events.
  const maxTs = events.reduce((m, e) => Math.max(m, e.ts), -Infinity);
  const firedThrough = maxTs - WINDOW.outOfOrdernessMs - WINDOW.slideMs;
  const mustFire = referenceStats(events).filter((s) => s.end <= firedThrough).length;

  const run = sageCliBackground(["run", "examples/analytics/stream-pipeline.ts", "--job-id", "analytics-stream", "--json"], { env });
  let stderr = "";
  run.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const exited = once(run, "exit");
  try {
    await until(
      "the windows behind the watermark and their alerts",
      async () => {
        const stats = await readTopic<WindowStats>(kafka, topics.stats);
        if (stats.filter((s) => s.end <= firedThrough).length < mustFire) return undefined;
        const alerts = await readTopic<Alert>(kafka, topics.alerts);
        return alerts.length >= referenceAlerts(stats).length ? true : undefined;
      },
      480_000,
    );
    const stop = sageCli(["stop", "analytics-stream"], { env });
    assert.equal(stop.code, 0, stop.stderr);
    const [code] = (await exited) as [number];
    assert.equal(code, 0, stderr);

    const stats = (await readTopic<WindowStats>(kafka, topics.stats)).sort(byWindow);
    const windows = compareWindows(stats, events, firedThrough);
    assert.deepEqual(windows.problems, []);
    assert.ok(windows.exact > 0, `windows equal to the reference: ${windows.exact}`);
    const alerts = (await readTopic<Alert>(kafka, topics.alerts)).sort(byAlert);
    assert.deepEqual(alerts, referenceAlerts(stats).sort(byAlert));
    t.diagnostic(
      `${events.length} events, ${stats.length} windows (${windows.exact} equal to the reference, ${windows.bounded} with late events), ${alerts.length} alerts`,
    );
    const { missed, unexpected } = matchAlerts(alerts, anomalies);
    assert.deepEqual(missed, [], "every injected anomaly raises an alert");
    assert.deepEqual(unexpected, [], "no alert on normal traffic");
  } finally {
    if (run.exitCode === null) run.kill("SIGKILL");
  }
});

test("examples/analytics/client.ts produces traffic, streams it, prints an alert per injected anomaly and stops cleanly", () => {
  const config = testConfig("analytics-client");
  const r = spawnSync(process.execPath, ["--import", "tsx", "examples/analytics/client.ts", "30"], {
    cwd: REPO,
    env: { ...process.env, ...cliEnv(config), SAGE_KAFKA_BROKERS: testBrokers(), SAGE_KAFKA_DEAD_LETTER_TOPIC: streamTopics("analytics-client").dlq },
    encoding: "utf8",
    timeout: 480_000,
  });
  assert.equal(r.status, 0, r.stderr);
  const injected = [...r.stdout.matchAll(/^ {2}(\S+): latency x8 /gm)].map((m) => m[1]!);
  assert.equal(injected.length, 3, r.stdout);
  for (const service of injected) assert.match(r.stdout, new RegExp(`^  ${service} \\S+: (p99|mean) `, "m"), `an alert for ${service}`);
  assert.match(r.stdout, /^stopped: \d+ events, \d+ windows, [1-9]\d* alerts$/m);
});
