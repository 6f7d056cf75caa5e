/** `sage run` and `sage worker`. */
import { loadPipeline } from "./module-loader.js";
import { SageClient, failureMessage } from "../client/sage-client.js";
import { createSageWorker } from "../worker/sage-worker.js";
import { cliLogger, configFrom, ensureServer, parseParams, startInProcessWorker, uiLink, type GlobalFlags } from "./common.js";
import { follow } from "./progress.js";
import { renderSummary } from "./summary.js";
import { runStreaming } from "./stream.js";
import { isStreaming } from "../core/plan/stream.js";
import { checkParameters } from "../core/plan/parameters.js";
import { watchPauses } from "./pauses.js";
import { dataConverterOf } from "../security/data-converter.js";
import { UsageError } from "../core/errors.js";
import type { FromSavepointFlags } from "./savepoint.js";

interface RunFlags extends GlobalFlags, FromSavepointFlags {
  jobId?: string;
  param?: string[];
  pipeline?: string;
  worker?: boolean;
  json?: boolean;
}

/**
 * Runs a pipeline to completion and prints its summary; exit code 1 when the job fails, 2 when it is
 * refused before it starts (a missing parameter, a job id that was already run).
 */
export async function runCommand(modulePath: string, flags: RunFlags): Promise<void> {
  const config = configFrom(flags);
  const logger = cliLogger(config, "cli");
  const params = parseParams(flags.param);
  const pipeline = await loadPipeline(modulePath, flags.pipeline);
  const { plan } = pipeline.compile({ parallelism: config.execution.parallelism, fusion: config.execution.fusion }); // definition errors before anything starts
  checkParameters(plan, params); // submit checks too; here it comes before a server or a worker is started
  dataConverterOf(config); // the encryption keys too: a key that cannot be loaded stops the run before anything starts
  const say = (m: string) => process.stderr.write(`${m}\n`);
  await ensureServer(config, say);
  if (isStreaming(plan)) return runStreaming(pipeline, config, flags, logger);
  if (flags.fromSavepoint)
    throw new UsageError(`pipeline "${pipeline.name}" is bounded: it needs no savepoint (a failed job resumes from its completed splits with \`sage rerun\`)`);
  const module = { path: modulePath, ...(flags.pipeline ? { name: flags.pipeline } : {}) };
  const worker = flags.worker !== false ? await startInProcessWorker(pipeline, config, logger, module) : null;
  const client = await SageClient.connect({ config });
  const started = Date.now();
  try {
    const job = await client.submit(pipeline, { ...(flags.jobId ? { jobId: flags.jobId } : {}), params });
    const link = uiLink(config, { workflowId: job.workflowId, runId: job.runId });
    const list = uiLink(config, { pipeline: pipeline.name });
    say(`submitted ${job.workflowId}${link ? `\nWeb UI: ${link}\njobs of ${pipeline.name} in the Web UI: ${list}` : ""}`);
    try {
      const result = await follow(job, job.result(), logger);
      const wall = Date.now() - started;
      process.stdout.write(
        flags.json
          ? `${JSON.stringify({ ...result, workflowId: job.workflowId, runId: job.runId, wallMs: wall, webUi: link })}\n`
          : `${renderSummary(result, job.plan, job.workflowId, wall, link)}\n`,
      );
    } catch (err) {
      process.stderr.write(`sage: ${failureMessage(err)}\n${link ? `Web UI: ${link}\n` : ""}`);
      process.exitCode = 1;
    }
  } finally {
    await client.close();
    await worker?.stop();
  }
}

interface WorkerFlags extends GlobalFlags {
  pipeline?: string;
}

/** Serves a pipeline until SIGINT/SIGTERM. */
export async function workerCommand(modulePath: string, flags: WorkerFlags): Promise<void> {
  const config = configFrom(flags);
  const logger = cliLogger(config, "worker");
  const pipeline = await loadPipeline(modulePath, flags.pipeline);
  const worker = await createSageWorker({ pipeline, config, logger, module: { path: modulePath, ...(flags.pipeline ? { name: flags.pipeline } : {}) } });
  watchPauses(logger);
  const stop = () => {
    logger.info("shutting down: finishing in-flight activities");
    void worker.shutdown();
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  await worker.run();
}
