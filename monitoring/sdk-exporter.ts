/**
 * Where the Temporal SDK's own Prometheus exporter (worker task slots, poll and schedule-to-start
 * latencies, sticky cache) listens: `monitoring.sdk-port`, by default the `/metrics` port + 1000
 * (9091 -> 10091). The SDK binds it itself, in its Rust core, so the port is checked here first,
 * where a port in use can still be a clear error.
 */
import type { Logger } from "pino";
import type { SageConfig } from "../core/config/schema.js";
import { freePortFor } from "./ports.js";

/** How far the SDK exporter's default port sits above the `/metrics` port. */
export const SDK_PORT_OFFSET = 1000;

/** The `host:port` the SDK exporter should bind, or null when it is off (`monitoring.enabled` or `sdk-metrics` false). */
export async function sdkMetricsAddress(options: SageConfig["monitoring"], metricsPort: number, logger: Logger): Promise<string | null> {
  if (!options.enabled || !options["sdk-metrics"]) return null;
  const configured = options["sdk-port"];
  const wanted = configured ?? (metricsPort + SDK_PORT_OFFSET <= 65535 ? metricsPort + SDK_PORT_OFFSET : 0);
  const key = configured === undefined ? "monitoring.sdk-port (default: monitoring.port + 1000)" : "monitoring.sdk-port";
  const port = await freePortFor(options.host, wanted, options["port-in-use"], key);
  const host = options.host.includes(":") ? `[${options.host}]` : options.host;
  logger.info({ url: `http://${host}:${port}/metrics` }, "Temporal SDK metrics endpoint");
  return `${host}:${port}`;
}
