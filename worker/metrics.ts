/** Prometheus metrics of a worker: records per operator, dead letters, stage latency. */
import { createServer, type Server } from "node:http";
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { Logger } from "pino";
import type { StageCounts } from "../core/plan/job.js";

/** The registry every metric of this process lives in. */
export const metricsRegistry = new Registry();
collectDefaultMetrics({ register: metricsRegistry, prefix: "sage_process_" });

const recordsIn = new Counter({
  name: "sage_operator_records_in_total",
  help: "Records into an operator",
  labelNames: ["pipeline", "operator"],
  registers: [metricsRegistry],
});
const recordsOut = new Counter({
  name: "sage_operator_records_out_total",
  help: "Records out of an operator",
  labelNames: ["pipeline", "operator"],
  registers: [metricsRegistry],
});
const deadLetters = new Counter({
  name: "sage_operator_dead_letters_total",
  help: "Records sent to the dead letters by an operator",
  labelNames: ["pipeline", "operator"],
  registers: [metricsRegistry],
});
const stageSeconds = new Histogram({
  name: "sage_stage_duration_seconds",
  help: "Wall time of one stage activity (one split or batch)",
  labelNames: ["pipeline", "stage"],
  buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
  registers: [metricsRegistry],
});

/** Records the outcome of one stage activity. */
export function observeStage(pipeline: string, stage: string, counts: StageCounts, seconds: number): void {
  stageSeconds.observe({ pipeline, stage }, seconds);
  for (const [operator, c] of Object.entries(counts)) {
    recordsIn.inc({ pipeline, operator }, c.in);
    recordsOut.inc({ pipeline, operator }, c.out);
    if (c.dead > 0) deadLetters.inc({ pipeline, operator }, c.dead);
  }
}

const shimRecords = new Counter({
  name: "sage_shim_records_total",
  help: "Records the shim delivered to partition workflows",
  labelNames: ["pipeline", "topic"],
  registers: [metricsRegistry],
});
const shimBatches = new Counter({
  name: "sage_shim_batches_total",
  help: "Micro-batches the shim delivered",
  labelNames: ["pipeline", "topic"],
  registers: [metricsRegistry],
});
const shimWaits = new Counter({
  name: "sage_shim_backpressure_waits_total",
  help: "Times the shim waited because a partition workflow had max-unacked-batches pending",
  labelNames: ["pipeline"],
  registers: [metricsRegistry],
});
const shimSignalSeconds = new Histogram({
  name: "sage_shim_signal_duration_seconds",
  help: "Time from cutting a micro-batch to the signal being accepted by the server",
  labelNames: ["pipeline"],
  buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10],
  registers: [metricsRegistry],
});
const shimPending = new Gauge({
  name: "sage_shim_pending_batches",
  help: "Batches a partition workflow holds unprocessed, as the shim last saw them",
  labelNames: ["pipeline", "workflow"],
  registers: [metricsRegistry],
});

/** Shim metrics (they go to the same registry as the worker's when both run in one process). */
export const shimMetrics = {
  delivered(pipeline: string, topic: string, records: number, seconds: number): void {
    shimRecords.inc({ pipeline, topic }, records);
    shimBatches.inc({ pipeline, topic });
    shimSignalSeconds.observe({ pipeline }, seconds);
  },
  waited(pipeline: string): void {
    shimWaits.inc({ pipeline });
  },
  pending(pipeline: string, workflow: string, batches: number): void {
    shimPending.set({ pipeline, workflow }, batches);
  },
};

/** A running `/metrics` endpoint. */
export interface MetricsServer {
  readonly port: number;
  close(): Promise<void>;
}

/** Serves `/metrics` on 127.0.0.1:`port`. */
export async function startMetricsServer(port: number, logger: Logger): Promise<MetricsServer> {
  const server: Server = createServer((req, res) => {
    if (req.url !== "/metrics") {
      res.writeHead(404).end();
      return;
    }
    metricsRegistry
      .metrics()
      .then((text) => res.writeHead(200, { "content-type": metricsRegistry.contentType }).end(text))
      .catch((err: unknown) => res.writeHead(500).end(String(err)));
  });
  await new Promise<void>((ok) => server.listen(port, "127.0.0.1", ok));
  const actual = (server.address() as { port: number }).port;
  logger.info({ url: `http://127.0.0.1:${actual}/metrics` }, "metrics endpoint up");
  return { port: actual, close: () => new Promise((ok) => server.close(() => ok())) };
}
