/** `sage replay` and `sage rerun`: work on recorded workflow histories. */
import { resolve } from "node:path";
import { installReplayRuntime, replayExecution, replayFailed, replayFile, type ReplayVerdict } from "../replay/replay.js";
import { rerunJob } from "../replay/rerun.js";
import { rerunRecorded } from "../replay/recorded-rerun.js";
import { loadPipeline } from "./module-loader.js";
import { SageClient, failureMessage } from "../client/sage-client.js";
import { createSageWorker } from "../worker/sage-worker.js";
import { cliLogger, configFrom, uiLink, type GlobalFlags } from "./common.js";
import { follow } from "./progress.js";
import { UsageError } from "../core/errors.js";
import { dataConverterOf } from "../security/data-converter.js";

interface ReplayFlags extends GlobalFlags {
  failed?: boolean;
  pipeline?: string;
  file?: string;
  workflows?: string;
  json?: boolean;
}

/** Replays one run, all failed runs, or a file; exit code 1 if any run is not deterministic. */
export async function replayCommand(workflowId: string | undefined, flags: ReplayFlags): Promise<void> {
  const config = configFrom(flags);
  const workflows = flags.workflows ? resolve(flags.workflows) : undefined;
  installReplayRuntime();
  let verdicts: ReplayVerdict[];
  if (flags.file) {
    verdicts = [await replayFile(flags.file, workflows, dataConverterOf(config))];
  } else {
    if (!workflowId && !flags.failed) throw new UsageError("give a workflow id, --failed, or --file <history.json>");
    const client = await SageClient.connect({ config });
    try {
      verdicts = flags.failed
        ? await replayFailed(client.temporal, flags.pipeline, workflows)
        : [await replayExecution(client.temporal, workflowId!, undefined, workflows)];
    } finally {
      await client.close();
    }
  }
  if (flags.json) process.stdout.write(`${JSON.stringify(verdicts)}\n`);
  else if (verdicts.length === 0) process.stdout.write("no runs to replay\n");
  else
    for (const v of verdicts)
      process.stdout.write(`${v.workflowId}${v.runId ? ` (${v.runId})` : ""}: ${v.deterministic ? "deterministic" : `NOT deterministic: ${v.error}`}\n`);
  if (verdicts.some((v) => !v.deterministic)) process.exitCode = 1;
}

interface RerunFlags extends GlobalFlags {
  module?: string;
  recorded?: boolean;
  json?: boolean;
}

/** Starts a seeded new run of a failed job and waits for it. */
export async function rerunCommand(workflowId: string, flags: RerunFlags): Promise<void> {
  const config = configFrom(flags);
  const logger = cliLogger(config, "cli");
  const pipeline = flags.module ? await loadPipeline(flags.module) : undefined;
  const worker = pipeline ? await createSageWorker({ pipeline, config, logger }) : null;
  const running = worker?.run();
  running?.catch((err: unknown) => logger.error({ err }, "worker failed"));
  const client = await SageClient.connect({ config });
  try {
    if (flags.recorded) {
      const { job, from } = await rerunRecorded(client, workflowId, pipeline ? { pipeline } : {});
      process.stderr.write(`re-running ${workflowId} as ${job.workflowId} with the model answers recorded by ${from} (no model calls)\n`);
      const link = uiLink(config, { workflowId: job.workflowId, runId: job.runId ?? (await job.describe()).runId });
      try {
        const result = await follow(job, job.result(), logger);
        process.stdout.write(
          flags.json
            ? `${JSON.stringify({ ...result, workflowId: job.workflowId, recordedFrom: from })}\n`
            : `${job.workflowId}: ${result.phase}, dead letters ${result.deadLetters}, model answers from the record of ${from}\nWeb UI: ${link ?? "-"}\n`,
        );
      } catch (err) {
        process.stderr.write(`sage: ${failureMessage(err)}\n`);
        process.exitCode = 1;
      }
      return;
    }
    const { runId, reused, fromRunId } = await rerunJob(client.temporal, workflowId);
    process.stderr.write(`re-running ${workflowId} as run ${runId}, reusing ${reused} completed split(s) of run ${fromRunId}\n`);
    const job = await client.job(workflowId);
    try {
      const result = await follow(job, job.result(), logger);
      process.stdout.write(
        flags.json
          ? `${JSON.stringify({ ...result, runId, reusedSplits: reused })}\n`
          : `${workflowId}: ${result.phase}, ${result.splitsTotal} splits (${reused} reused), dead letters ${result.deadLetters}\nWeb UI: ${uiLink(config, { workflowId, runId }) ?? "-"}\n`,
      );
    } catch (err) {
      process.stderr.write(`sage: ${failureMessage(err)}\n`);
      process.exitCode = 1;
    }
  } finally {
    await client.close();
    await worker?.shutdown();
  }
}
