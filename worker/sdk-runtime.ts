/**
 * The Temporal SDK's process-wide runtime, installed once: its own log lines (and the Rust core's,
 * forwarded) go to our pino logger on stderr, so stdout carries only results (`--json` stays JSON).
 */
import { DefaultLogger, Runtime, type LogEntry, type LogLevel } from "@temporalio/worker";
import type { Logger } from "pino";

let installed = false;

/**
 * The SDK's warnings about a workflow that failed, or an activity that failed for good: the job's
 * failure says the same (`sage run` prints its root cause once), so they are debug lines. An
 * activity failure Temporal will retry stays a warning: nothing else reports it.
 */
function reportedBySage(entry: LogEntry): boolean {
  if (entry.message === "Workflow failed") return true;
  const error = entry.meta?.error as { nonRetryable?: unknown } | undefined;
  return entry.message === "Activity failed" && error?.nonRetryable === true;
}

/** True once the runtime is installed (by `installSdkRuntime`: the first call wins). */
export function sdkRuntimeInstalled(): boolean {
  return installed;
}

/**
 * Installs the SDK runtime with logs routed to `logger` and, given `metricsAddress` (`host:port`),
 * its Prometheus exporter there (first call wins; later calls are no-ops).
 */
export function installSdkRuntime(logger: Logger, metricsAddress?: string | null): void {
  if (installed) return;
  installed = true;
  const sdkLog = logger.child({ component: "temporal-sdk" });
  Runtime.install({
    logger: new DefaultLogger("WARN", (entry) => {
      const level = entry.level.toLowerCase() as Lowercase<LogLevel>;
      const fn = reportedBySage(entry) ? sdkLog.debug : level === "error" ? sdkLog.error : level === "warn" ? sdkLog.warn : sdkLog.info;
      fn.call(sdkLog, { ...entry.meta }, entry.message);
    }),
    telemetryOptions: {
      logging: { forward: {}, filter: { core: "WARN", other: "ERROR" } },
      ...(metricsAddress ? { metrics: { prometheus: { bindAddress: metricsAddress } } } : {}),
    },
  });
}
