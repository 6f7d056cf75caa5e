/**
 * `sage replay`: replays recorded histories against today's workflow code with the SDK's replayer
 * and reports, per run, "deterministic" or the determinism violation and where it diverged.
 */
import { readFile } from "node:fs/promises";
import { bundleWorkflowCode, DefaultLogger, Worker, type ReplayWorkerOptions } from "@temporalio/worker";
import { historyFromJSON } from "@temporalio/common/lib/proto-utils.js";
import type { Client } from "@temporalio/client";
import type { DataConverter } from "@temporalio/common";
import { PIPELINE_WORKFLOW } from "../core/plan/job.js";
import { STREAM_WORKFLOW } from "../core/plan/stream.js";
import { workflowBundle, workflowsPath as defaultWorkflowsPath } from "../worker/sage-worker.js";
import { installSdkRuntime } from "../worker/sdk-runtime.js";
import { createLogger } from "../client/logger.js";
import { SEARCH_ATTRIBUTES } from "../client/search-attributes.js";
import { checkDecodable } from "./history-payloads.js";

/** The verdict for one run. */
export interface ReplayVerdict {
  workflowId: string;
  runId: string;
  deterministic: boolean;
  /** Error name and message (a DeterminismViolationError names the diverging event). */
  error?: string;
}

/**
 * Installs the SDK runtime for a process that only replays (`sage replay`): the replayer's own log
 * lines (e.g. the "Failing workflow task" warning of every violation) go to stderr, not stdout, so
 * `--json` output stays JSON.
 */
export function installReplayRuntime(): void {
  installSdkRuntime(createLogger("warn"));
}

/** The replayer's options: the workflow bundle, and the data converter the history was written with (its codec decrypts). */
async function replayOptions(workflowsPath: string | undefined, dataConverter: DataConverter): Promise<ReplayWorkerOptions> {
  const bundle =
    workflowsPath && workflowsPath !== defaultWorkflowsPath
      ? await bundleWorkflowCode({
          workflowsPath,
          logger: new DefaultLogger("WARN"),
          ...(dataConverter.failureConverterPath ? { failureConverterPath: dataConverter.failureConverterPath } : {}),
        })
      : await workflowBundle(dataConverter);
  return { workflowBundle: bundle, replayName: "sage-replay", dataConverter };
}

function verdict(workflowId: string, runId: string, error: unknown): ReplayVerdict {
  if (!error) return { workflowId, runId, deterministic: true };
  const e = error as Error & { cause?: Error };
  const detail = e.cause && e.cause.message && !e.message.includes(e.cause.message) ? ` (${e.cause.message})` : "";
  return { workflowId, runId, deterministic: false, error: `${e.name}: ${e.message}${detail}` };
}

/**
 * Replays one workflow execution (latest run unless `runId`), decoding its payloads with the client's
 * data converter; a payload it cannot decrypt throws `PayloadDecryptionError` (no verdict).
 */
export async function replayExecution(client: Client, workflowId: string, runId?: string, workflowsPath?: string): Promise<ReplayVerdict> {
  const handle = client.workflow.getHandle(workflowId, runId);
  const history = await handle.fetchHistory();
  const firstRunId = runId ?? (await handle.describe()).runId;
  await checkDecodable(history, client.options.loadedDataConverter.payloadCodecs);
  try {
    await Worker.runReplayHistory(await replayOptions(workflowsPath, client.options.dataConverter), history, workflowId);
    return verdict(workflowId, firstRunId, null);
  } catch (err) {
    return verdict(workflowId, firstRunId, err);
  }
}

/** Replays every failed run of a pipeline (or of all pipelines). */
export async function replayFailed(client: Client, pipeline?: string, workflowsPath?: string): Promise<ReplayVerdict[]> {
  const filter = pipeline
    ? `${SEARCH_ATTRIBUTES.pipeline.name} = "${pipeline}"`
    : `(WorkflowType = "${PIPELINE_WORKFLOW}" OR WorkflowType = "${STREAM_WORKFLOW}")`;
  const histories = client.workflow.list({ query: `${filter} AND ExecutionStatus = "Failed"` }).intoHistories();
  const out: ReplayVerdict[] = [];
  for await (const r of Worker.runReplayHistories(await replayOptions(workflowsPath, client.options.dataConverter), histories))
    out.push(verdict(r.workflowId, r.runId, r.error));
  return out;
}

/**
 * Replays a history file (`temporal workflow show --output json`, or Web UI download); an encrypted
 * history needs the `dataConverter` of the configuration that wrote it (`dataConverterOf`).
 */
export async function replayFile(path: string, workflowsPath?: string, dataConverter: DataConverter = {}): Promise<ReplayVerdict> {
  const history = historyFromJSON(JSON.parse(await readFile(path, "utf8")));
  const workflowId = `file:${path}`;
  await checkDecodable(history, dataConverter.payloadCodecs ?? []);
  try {
    await Worker.runReplayHistory(await replayOptions(workflowsPath, dataConverter), history, workflowId);
    return verdict(workflowId, "", null);
  } catch (err) {
    return verdict(workflowId, "", err);
  }
}
