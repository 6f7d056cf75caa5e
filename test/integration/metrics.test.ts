/**
 * Metrics on a real Prometheus: a Kafka -> Kafka job with a `sage worker` and a `sage shim` process,
 * each serving /metrics on its own monitoring.port (the worker also the Temporal SDK's exporter),
 * scraped every second by a Prometheus that also loads the exported alert rules. Prometheus' HTTP
 * API sees the job's record counters and latency histograms move as records go through.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { SageClient } from "../../client/sage-client.js";
import { StreamJob } from "../../streaming/stream-job.js";
import { freePort } from "../../dev/temporal-server.js";
import { alertRulesYaml } from "../../monitoring/alert-rules.js";
import { startWorkerProcess, until } from "../support/harness.js";
import { createTopics, produceRange, startShimProcess, STREAM_FIXTURE, streamCliEnv, streamConfig, streamTopics, testKafka } from "../support/kafka.js";
import { startPrometheus, type Prometheus } from "../support/prometheus.js";
import pipeline from "../fixtures/stream-pipeline.js";

/** Waits until `query` gives at least `min` (Prometheus scrapes every second; a guard against hangs, not a timing assertion). */
function atLeast(prom: Prometheus, query: string, min: number): Promise<number> {
  return until(`${query} >= ${min}`, async () => {
    const v = await prom.value(query);
    return v !== null && v >= min ? v : undefined;
  });
}

test("Prometheus scrapes a worker and a shim: record counters, latency histograms, lag, process and SDK metrics move", async () => {
  const t = streamTopics("metrics");
  Object.assign(process.env, t.env);
  const config = streamConfig("metrics", t.dlq, { "kafka.max-batch-records": 100 });
  const kafka = testKafka();
  await createTopics(kafka, t, 2);
  const [workerPort, sdkPort, shimPort] = [await freePort(), await freePort(), await freePort()];
  const monitoring = (port: number) => ({ SAGE_MONITORING_ENABLED: "true", SAGE_MONITORING_PORT: String(port) });
  const jobId = `metrics-${process.pid}`;
  const client = await SageClient.connect({ config });
  const worker = await startWorkerProcess(STREAM_FIXTURE, config, client, {
    ...streamCliEnv(config, t),
    ...monitoring(workerPort),
    SAGE_MONITORING_SDK_PORT: String(sdkPort),
  });
  const shim = startShimProcess(config, { env: { ...t.env, ...monitoring(shimPort) } }, jobId);
  writeFileSync(join(config.dir, "sage-rules.yml"), alertRulesYaml(config.monitoring.alerts));
  const prom = await startPrometheus(
    join(config.dir, "prometheus"),
    { "sage-worker": `127.0.0.1:${workerPort}`, "sage-worker-sdk": `127.0.0.1:${sdkPort}`, "sage-shim": `127.0.0.1:${shimPort}` },
    [join(config.dir, "sage-rules.yml")],
  );
  const job = StreamJob.create(client, pipeline, { jobId });
  const sel = `pipeline="streamtest", job_id="${jobId}"`;
  try {
    // Every target is up: the worker's and the shim's /metrics, and the SDK's own exporter.
    for (const target of ["sage-worker", "sage-worker-sdk", "sage-shim"]) await atLeast(prom, `up{job="${target}"}`, 1);
    const rules = await prom.api<{ groups: Array<{ name: string; rules: Array<{ name: string; health: string }> }> }>("/api/v1/rules");
    const sage = rules.groups.find((g) => g.name === "sage");
    assert.equal(sage?.rules.length, 6);
    assert.ok(
      sage.rules.every((r) => r.health !== "err"),
      JSON.stringify(sage.rules),
    );

    // Two rounds: the counters and histogram counts Prometheus holds move with each.
    for (const upTo of [1_000, 2_000]) {
      await produceRange(kafka, t.input, upTo - 1_000, upTo);
      await atLeast(prom, `sum(sage_shim_records_total{${sel}})`, upTo);
      await atLeast(prom, `sum(sage_operator_records_in_total{${sel}, operator="double"})`, upTo);
      await atLeast(prom, `sum(sage_operator_records_out_total{${sel}, operator="out"})`, upTo);
      // Each record's end-to-end latency (source timestamp to sink commit) is one observation.
      await atLeast(prom, `sum(sage_end_to_end_latency_seconds_count{${sel}})`, upTo);
    }
    assert.ok((await prom.value(`sum(sage_stage_duration_seconds_count{${sel}})`))! > 0, "batch latency observed");
    assert.ok((await prom.value(`sum(sage_shim_bytes_total{${sel}})`))! > 2_000 * 20, "bytes read counted");
    assert.ok((await prom.value(`sum(sage_stage_bytes_out_total{${sel}, topic="${t.output}"})`))! > 2_000 * 20, "bytes written counted");
    const p99 = await prom.value(`histogram_quantile(0.99, sum by (le) (sage_end_to_end_latency_seconds_bucket{${sel}}))`);
    assert.ok(p99 !== null && p99 > 0, `p99 ${p99}`);
    // The shim measures consumer lag per partition; with everything processed it comes to 0.
    await until("consumer lag of both partitions at 0", async () => {
      const data = await prom.api<{ result: Array<{ value: [number, string] }> }>(
        `/api/v1/query?query=${encodeURIComponent(`sage_consumer_lag_records{${sel}, topic="${t.input}"}`)}`,
      );
      return data.result.length === 2 && data.result.every((r) => r.value[1] === "0") ? true : undefined;
    });
    assert.ok((await prom.value(`sage_process_process_resident_memory_bytes{job="sage-worker"}`))! > 0);
    assert.ok((await prom.value(`sage_process_process_resident_memory_bytes{job="sage-shim"}`))! > 0);
    assert.ok((await prom.value(`count({job="sage-worker-sdk", __name__=~"temporal_.+"})`))! > 0, "the SDK exports its own metrics");
    assert.equal(await prom.value(`sum(sage_operator_dead_letters_total{${sel}})`), null, "no dead letters, so no series");
  } finally {
    await job.stop().catch(() => undefined);
    await job.result().catch(() => undefined);
    await shim.kill();
    await worker.stop();
    await prom.stop();
    await client.close();
  }
});
