/** Unit tests of the metrics plumbing: the bulk histogram, what a committed unit records, and the ports (in use: one clear error, or the next one). */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer, type Server } from "node:net";
import { Registry } from "prom-client";
import { pino } from "pino";
import { ConfigError } from "../../../core/errors.js";
import { parseConfig } from "../../../core/config/schema.js";
import { BulkHistogram } from "../../../monitoring/bulk-histogram.js";
import { listenOn } from "../../../monitoring/ports.js";
import { metricsRegistry } from "../../../monitoring/registry.js";
import { serveMetrics } from "../../../monitoring/server.js";
import { sdkMetricsAddress } from "../../../monitoring/sdk-exporter.js";
import { unitCommitted } from "../../../monitoring/stage-metrics.js";

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
