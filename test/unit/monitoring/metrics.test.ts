/** Unit tests of the metrics: the bulk histogram, what stages, shims and model calls record, and the ports (in use: one clear error, or the next one). */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer, type Server } from "node:net";
import { Registry } from "prom-client";
import { pino } from "pino";
import { ConfigError, NonRetryableError } from "../../../core/errors.js";
import { parseConfig } from "../../../core/config/schema.js";
import { BulkHistogram } from "../../../monitoring/bulk-histogram.js";
import { listenOn } from "../../../monitoring/ports.js";
import { metricsRegistry } from "../../../monitoring/registry.js";
import { serveMetrics } from "../../../monitoring/server.js";
import { sdkMetricsAddress } from "../../../monitoring/sdk-exporter.js";
import { unitCommitted } from "../../../monitoring/stage-metrics.js";
import { shimMetrics } from "../../../monitoring/shim-metrics.js";
import { modelAnswered } from "../../../monitoring/llm-metrics.js";
import type { StreamProgress } from "../../../core/plan/stream.js";
import { definePipeline } from "../../../core/api/pipeline.js";
import { FileSink } from "../../../core/api/connectors.js";
import type { RecordContext } from "../../../core/api/context.js";
import { MemoryHost } from "../stage/memory-host.js";

const quiet = pino({ level: "silent" });

test("the bulk histogram prints cumulative buckets, sum and count like prom-client's", async () => {
  const registry = new Registry();
  const h = new BulkHistogram("t_latency_seconds", "test", ["stage"], [0.1, 1], registry);
  h.observeAll({ stage: "s0" }, [0.0625, 0.5, 0.5, 4, Number.NaN]);
  h.observeAll({ stage: "s0" }, [0.125]);
  const text = await registry.metrics();
  assert.match(text, /# TYPE t_latency_seconds histogram/);
  assert.match(text, /t_latency_seconds_bucket\{stage="s0",le="0.1"\} 1\n/);
  assert.match(text, /t_latency_seconds_bucket\{stage="s0",le="1"\} 4\n/);
  assert.match(text, /t_latency_seconds_bucket\{stage="s0",le="\+Inf"\} 5\n/);
  assert.match(text, /t_latency_seconds_sum\{stage="s0"\} 5.1875\n/);
  assert.match(text, /t_latency_seconds_count\{stage="s0"\} 5\n/);
});

test("a committed unit: bytes per topic, and end-to-end latency only for sink records with a source timestamp", async () => {
  const ref = { pipeline: "unitp", jobId: "j7", stage: "s0" };
  const now = 1_700_000_010_000;
  unitCommitted(
    ref,
    [
      { topic: "out", message: { key: "k", value: "12345", timestamp: String(now - 2_000) } },
      { topic: "out", message: { key: null, value: Buffer.from("ab"), timestamp: String(now - 200) } },
      { topic: "out", message: { key: null, value: "x" } },
      { topic: "unitp.dlq", message: { key: null, value: "dead", timestamp: String(now - 60_000) } },
      { topic: "sage.unitp.j7.op.repartition", message: { key: "k", value: "r", timestamp: String(now - 60_000) } },
    ],
    "unitp.dlq",
    now,
  );
  const text = await metricsRegistry.metrics();
  const labels = 'pipeline="unitp",job_id="j7",stage="s0"';
  assert.match(text, new RegExp(`sage_end_to_end_latency_seconds_count\\{${labels}\\} 2\\n`));
  assert.match(text, new RegExp(`sage_end_to_end_latency_seconds_sum\\{${labels}\\} 2.2\\n`));
  assert.match(text, new RegExp(`sage_end_to_end_latency_seconds_bucket\\{${labels},le="0.25"\\} 1\\n`));
  assert.match(text, new RegExp(`sage_stage_bytes_out_total\\{${labels},topic="out"\\} 9\\n`));
  assert.match(text, new RegExp(`sage_stage_bytes_out_total\\{${labels},topic="unitp.dlq"\\} 4\\n`));
  assert.match(text, new RegExp(`sage_stage_bytes_out_total\\{${labels},topic="sage.unitp.j7.op.repartition"\\} 2\\n`));
});

/** A TCP listener on a free port of 127.0.0.1, to make a port busy. */
async function busyPort(): Promise<{ port: number; server: Server }> {
  const server = createServer();
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  return { port: (server.address() as { port: number }).port, server };
}

test("a metrics port in use is one ConfigError naming the port and the key; with port-in-use next, the next free port", async () => {
  const busy = await busyPort();
  try {
    const monitoring = parseConfig({ monitoring: { port: busy.port, "sdk-metrics": false } }).monitoring;
    await assert.rejects(serveMetrics(monitoring, quiet), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.equal(
        err.message,
        `monitoring.port: port ${busy.port} is in use on 127.0.0.1 (another sage worker or shim on this machine?); set monitoring.port to a free port (0: any), or monitoring.port-in-use: next to take the next free one`,
      );
      return true;
    });
    const next = await serveMetrics({ ...monitoring, "port-in-use": "next" }, quiet);
    assert.ok(next);
    try {
      assert.ok(next.port > busy.port && next.port < busy.port + 100, `${next.port}`);
      // A second user in the same process shares the endpoint.
      const again = await serveMetrics({ ...monitoring, "port-in-use": "next" }, quiet);
      assert.equal(again?.port, next.port);
      await again?.close();
      const text = await (await fetch(next.url)).text();
      assert.match(text, /sage_process_process_resident_memory_bytes \d+/);
    } finally {
      await next.close();
    }
  } finally {
    busy.server.close();
  }
});

test("the SDK exporter's port: the /metrics port + 1000 by default, monitoring.sdk-port if set, in use an error naming it", async () => {
  const monitoring = parseConfig({}).monitoring;
  const busy = await busyPort();
  try {
    await assert.rejects(
      sdkMetricsAddress({ ...monitoring, "sdk-port": busy.port }, 9091, quiet),
      new RegExp(`^ConfigError: monitoring.sdk-port: port ${busy.port} is in use`),
    );
    if (busy.port > 1000) {
      await assert.rejects(sdkMetricsAddress(monitoring, busy.port - 1000, quiet), /monitoring\.sdk-port \(default: monitoring\.port \+ 1000\): port/);
    }
  } finally {
    busy.server.close();
  }
  assert.equal(await sdkMetricsAddress({ ...monitoring, "sdk-metrics": false }, 9091, quiet), null);
  assert.equal(await sdkMetricsAddress({ ...monitoring, enabled: false }, 9091, quiet), null);
});

test("listenOn: a host that is not this machine's is a config error naming monitoring.host", async () => {
  const server = createServer();
  await assert.rejects(listenOn(server, "192.0.2.1", 0, "fail", "monitoring.port"), /monitoring\.host: 192\.0\.2\.1 is not an address of this machine/);
});

test("failed tries of a user function count as errors, and those tried again as retries, per operator", async () => {
  const pipeline = definePipeline("unit-metric-retries", (env) =>
    env
      .fromCollection([1, 2, 3], { name: "numbers" })
      .map(
        (n: number, ctx: RecordContext) => {
          if (n === 2 && ctx.attempt < 3) throw new Error("2 fails twice");
          if (n === 3) throw new NonRetryableError("3 never passes");
          return n;
        },
        { name: "flaky", retry: { maxAttempts: 3, initialIntervalMs: 1, maxIntervalMs: 2 } },
      )
      .sink(FileSink.jsonl(env.param("output")), { name: "out" }),
  );
  const host = new MemoryHost(pipeline);
  try {
    await host.run("metric-retries", { output: host.path("out.jsonl") });
  } finally {
    await host.close();
  }
  const text = await metricsRegistry.metrics();
  const labels = 'pipeline="unit-metric-retries",job_id="metric-retries",operator="flaky"';
  // 2 fails twice, both tried again; 3 fails once and goes to the dead letters.
  assert.match(text, new RegExp(`sage_operator_errors_total\\{${labels}\\} 3\\n`));
  assert.match(text, new RegExp(`sage_operator_retries_total\\{${labels}\\} 2\\n`));
});

test("what the shim learns from a partition workflow's progress: pending, watermark lag, state, each checkpoint once", async () => {
  const job = { pipeline: "unitshim", jobId: "j9" };
  const now = 1_700_000_100_000;
  const progress = {
    pending: 3,
    watermarks: { window: now - 4_000 },
    state: { window: { entries: 10, bytes: 2048, timers: 2 } },
    lastCheckpoint: { at: "2026-01-01T00:00:00.000Z", run: 4, historyEvents: 2000, historyBytes: 65536, carriedBatches: 1, ms: 1500 },
  } as unknown as StreamProgress;
  shimMetrics.progress(job, "w0", progress, now);
  shimMetrics.progress(job, "w0", progress, now);
  const text = await metricsRegistry.metrics();
  const base = 'pipeline="unitshim",job_id="j9"';
  assert.match(text, new RegExp(`sage_shim_pending_batches\\{${base},workflow="w0"\\} 3\\n`));
  assert.match(text, new RegExp(`sage_watermark_lag_seconds\\{${base},operator="window",workflow="w0"\\} 4\\n`));
  assert.match(text, new RegExp(`sage_state_bytes\\{${base},operator="window",workflow="w0"\\} 2048\\n`));
  assert.match(text, new RegExp(`sage_state_timers\\{${base},operator="window",workflow="w0"\\} 2\\n`));
  assert.match(text, new RegExp(`sage_checkpoints_total\\{${base}\\} 1\\n`));
  assert.match(text, new RegExp(`sage_checkpoint_duration_seconds_sum\\{${base}\\} 1.5\\n`));
  assert.match(text, new RegExp(`sage_checkpoint_history_bytes\\{${base},workflow="w0"\\} 65536\\n`));
});

test("model calls: requests per model, cache hits without tokens or cost, tokens and estimated cost otherwise", async () => {
  const call = { pipeline: "unitllm", jobId: "j3", operator: "ask", model: "m1", kind: "chat" as const };
  modelAnswered({ ...call, cached: false, promptTokens: 100, completionTokens: 20, cost: 0.25 });
  modelAnswered({ ...call, cached: true, promptTokens: 100, completionTokens: 20, cost: 0 });
  const text = await metricsRegistry.metrics();
  const labels = 'pipeline="unitllm",job_id="j3",operator="ask",model="m1"';
  assert.match(text, new RegExp(`sage_llm_requests_total\\{${labels},kind="chat"\\} 2\\n`));
  assert.match(text, new RegExp(`sage_llm_cache_hits_total\\{${labels}\\} 1\\n`));
  assert.match(text, new RegExp(`sage_llm_tokens_in_total\\{${labels}\\} 100\\n`));
  assert.match(text, new RegExp(`sage_llm_tokens_out_total\\{${labels}\\} 20\\n`));
  assert.match(text, new RegExp(`sage_llm_cost_usd_total\\{${labels}\\} 0.25\\n`));
});
