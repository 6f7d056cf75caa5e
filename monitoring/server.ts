/**
 * The `/metrics` endpoint of a process: one per process, shared by the workers and shims in it
 * (they share one registry), up while any of them runs, on `monitoring.host:monitoring.port`.
 */
import { createServer } from "node:http";
import type { Logger } from "pino";
import type { SageConfig } from "../core/config/schema.js";
import { metricsRegistry } from "./registry.js";
import { listenOn } from "./ports.js";

/** A running `/metrics` endpoint, as one user holds it. */
export interface MetricsEndpoint {
  readonly port: number;
  readonly url: string;
  /** Lets go of the endpoint; the last user closes it. */
  close(): Promise<void>;
}

interface Shared {
  port: number;
  url: string;
  users: number;
  close(): Promise<void>;
}

let shared: Promise<Shared> | null = null;

async function start(options: SageConfig["monitoring"], logger: Logger): Promise<Shared> {
  const server = createServer((req, res) => {
    if (req.url !== "/metrics" && !req.url?.startsWith("/metrics?")) {
      res.writeHead(404).end();
      return;
    }
    metricsRegistry
      .metrics()
      .then((text) => res.writeHead(200, { "content-type": metricsRegistry.contentType }).end(text))
      .catch((err: unknown) => res.writeHead(500).end(String(err)));
  });
  const port = await listenOn(server, options.host, options.port, options["port-in-use"], "monitoring.port");
  const host = options.host.includes(":") ? `[${options.host}]` : options.host;
  const url = `http://${host}:${port}/metrics`;
  if (port !== options.port && options.port !== 0) logger.warn({ url, configured: options.port }, "monitoring.port was in use: metrics on the next free port");
  logger.info({ url }, "metrics endpoint up");
  // Keep-alive scrapes must not hold the process open after the last user lets go.
  server.unref();
  return { port, url, users: 0, close: () => new Promise((ok) => server.close(() => ok())) };
}

/**
 * Serves this process's metrics unless `monitoring.enabled` is false (then null). A second caller
 * in the same process shares the endpoint the first one opened.
 */
export async function serveMetrics(options: SageConfig["monitoring"], logger: Logger): Promise<MetricsEndpoint | null> {
  if (!options.enabled) return null;
  const opening = (shared ??= start(options, logger));
  let s: Shared;
  try {
    s = await opening;
  } catch (err) {
    if (shared === opening) shared = null;
    throw err;
  }
  s.users++;
  let closed = false;
  return {
    port: s.port,
    url: s.url,
    async close() {
      if (closed) return;
      closed = true;
      if (--s.users > 0) return;
      if (shared === opening) shared = null;
      await s.close();
    },
  };
}
