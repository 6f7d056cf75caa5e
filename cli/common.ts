/** What every `sage` command shares: global flags -> configuration, logging, the server, links. */
import { mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Logger } from "pino";
import type { SageConfig } from "../core/config/schema.js";
import { ServerUnavailableError, UsageError } from "../core/errors.js";
import { SA_JOB_ID, SA_PIPELINE } from "../core/plan/job.js";
import { loadConfig } from "../client/config-loader.js";
import { connectionOptions } from "../client/connection.js";
import { isLocalAddress, isServerUp, startDevServer, type DevServer } from "../dev/temporal-server.js";
import { createLogger } from "../client/logger.js";
import type { Pipeline } from "../core/api/pipeline.js";
import type { PipelineModule, SageWorker } from "../worker/sage-worker.js";

/** Flags every command accepts. */
export interface GlobalFlags {
  config?: string;
  address?: string;
  namespace?: string;
  taskQueue?: string;
  dataDir?: string;
  logLevel?: string;
  parallelism?: string;
  fusion?: boolean;
  /** `--metrics-port` of the commands that run a worker or a shim. */
  metricsPort?: string;
}

/** Configuration from file, environment and these flags. */
export function configFrom(flags: GlobalFlags): SageConfig {
  return loadConfig({
    ...(flags.config ? { file: flags.config } : {}),
    overrides: {
      "temporal.address": flags.address,
      "temporal.namespace": flags.namespace,
      "temporal.task-queue": flags.taskQueue,
      "data-dir": flags.dataDir,
      "log.level": flags.logLevel,
      "execution.parallelism": flags.parallelism,
      "execution.fusion": flags.fusion === false ? false : undefined,
      "monitoring.port": flags.metricsPort,
    },
  });
}

/** The CLI's logger (JSON on stderr). */
export function cliLogger(config: SageConfig, component: string): Logger {
  return createLogger(config.log.level, { component });
}

/** Files of the local dev server under the data dir. */
export function devServerFiles(config: SageConfig) {
  const dir = resolve(config["data-dir"], "temporal");
  return { dir, dbFile: join(dir, "dev.db"), logFile: join(dir, "dev.log"), pidFile: join(dir, "dev.pid") };
}

/** Base URL of the Web UI for the configured server (null when unknown). */
export function uiBase(config: SageConfig): string | null {
  if (config.temporal["ui-address"]) return config.temporal["ui-address"].replace(/\/$/, "");
  if (!isLocalAddress(config.temporal.address)) return null;
  return `http://127.0.0.1:${config.temporal["ui-port"]}`;
}

/**
 * What a Web UI link shows: one run (the run id is required: the UI reads a missing one as the run
 * id "history" and answers 400), or the list of a pipeline's or a job's workflows (a visibility
 * query on the search attributes every job carries; a streaming job's partition workflows continue
 * as new, so a link to one run of theirs goes stale).
 */
export type UiTarget = { workflowId: string; runId: string } | { pipeline: string } | { jobId: string };

/** Web UI link of one workflow run, or of a pipeline's or a job's workflow list (null when the UI address is unknown). */
export function uiLink(config: SageConfig, target: UiTarget): string | null {
  const base = uiBase(config);
  if (!base) return null;
  const workflows = `${base}/namespaces/${encodeURIComponent(config.temporal.namespace)}/workflows`;
  if ("runId" in target) return `${workflows}/${encodeURIComponent(target.workflowId)}/${encodeURIComponent(target.runId)}/history`;
  const query = "pipeline" in target ? `${SA_PIPELINE}="${target.pipeline}"` : `${SA_JOB_ID}="${target.jobId}"`;
  return `${workflows}?query=${encodeURIComponent(query)}`;
}

/**
 * Reuses a server that answers at the configured address, or starts the local dev server (left
 * running in the background, so the Web UI link stays valid) when the address is local.
 */
export async function ensureServer(config: SageConfig, say: (m: string) => void): Promise<DevServer | null> {
  const address = config.temporal.address;
  // The dev server has no TLS, so a TLS config means a server run elsewhere; connecting says why it fails.
  if (connectionOptions(config).tls) return null;
  if (await isServerUp(address)) return null;
  if (!isLocalAddress(address)) throw new ServerUnavailableError(`no Temporal server answers at ${address}, and it is not a local address, so none is started`);
  const files = devServerFiles(config);
  mkdirSync(files.dir, { recursive: true });
  const server = await startDevServer({
    address,
    uiPort: config.temporal["ui-port"],
    dbFile: files.dbFile,
    logFile: files.logFile,
    ...(config.temporal.binary ? { binary: config.temporal.binary } : {}),
    detached: true,
    log: say,
  });
  if (server.pid) writeFileSync(files.pidFile, String(server.pid));
  say(`the dev server keeps running in the background (Web UI stays up); stop it with \`sage dev --stop\``);
  return server;
}

/** Parses repeated `--param k=v` flags. */
export function parseParams(values: string[] = []): Record<string, string> {
  const out: Record<string, string> = {};
  for (const v of values) {
    const i = v.indexOf("=");
    if (i <= 0) throw new UsageError(`--param "${v}" must look like name=value`);
    out[v.slice(0, i)] = v.slice(i + 1);
  }
  return out;
}

/** A worker running inside a CLI process (`sage run`), and how to stop it. */
export interface InProcessWorker {
  worker: SageWorker;
  /** Shuts the worker down and waits for its run to end. */
  stop(): Promise<void>;
}

/** Starts a worker for `pipeline` (from `module`, which its stage threads load) in this process; a failure of its run is logged, not thrown. */
export async function startInProcessWorker(pipeline: Pipeline, config: SageConfig, logger: Logger, module?: PipelineModule): Promise<InProcessWorker> {
  // Loaded here, not at the top: the commands that only talk to the server never load the worker.
  const { createSageWorker } = await import("../worker/sage-worker.js");
  const worker = await createSageWorker({ pipeline, config, logger, ...(module ? { module } : {}) });
  const running = worker.run();
  running.catch((err: unknown) => logger.error({ err }, "worker failed"));
  return {
    worker,
    stop: async () => {
      await worker.shutdown();
      await running.catch(() => undefined);
    },
  };
}
