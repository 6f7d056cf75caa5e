/** Prometheus metrics of a worker: records per operator, dead letters, stage latency. */
import { createServer, type Server } from "node:http";
import { Counter, Histogram, Registry, collectDefaultMetrics } from "prom-client";
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
