/**
 * `sage dlq redrive <job>`: sends the selected dead letters back through the job, or through a fixed
 * version of its pipeline module, each entering at the operator it failed in, exactly once. A
 * bounded job's letters run as a redrive job (served by a worker in this process with `--module`,
 * else by the job's running workers) whose output is appended to the job's; a streaming job's go
 * to the redrive topic of the running job that runs the plan (the job itself, or with `--module`
 * the job running the fixed version).
 */
import type { Logger } from "pino";
import type { Pipeline } from "../core/api/pipeline.js";
import type { SageConfig } from "../core/config/schema.js";
import { UsageError } from "../core/errors.js";
import type { JobResult } from "../core/plan/job.js";
import type { PhysicalPlan } from "../core/plan/physical.js";
import { deadLetterTopicOf } from "../connectors/kafka/index.js";
import type { SageClient } from "../client/sage-client.js";
import { failureMessage } from "../client/sage-client.js";
import { startBoundedRedrive } from "../client/dlq/bounded-redrive.js";
import { RedriveRefusedError } from "../client/dlq/errors.js";
import type { BoundedJobRef, StreamingJobRef } from "../client/dlq/job-ref.js";
import { redriveIdOf } from "../client/dlq/selection.js";
import { redriveStream } from "../client/dlq/stream-redrive.js";
import { taskQueuePollers } from "../client/task-queue.js";
import type { KafkaClient } from "../connectors/kafka/client.js";
import { StreamJobHandle } from "../streaming/stream-job.js";
import { loadPipeline } from "./module-loader.js";
import { cliLogger, startInProcessWorker, type InProcessWorker } from "./common.js";
import { filterOf, withJob, type DlqFlags } from "./dlq.js";

/** Flags of `sage dlq redrive`. */
export interface RedriveFlags extends DlqFlags {
  module?: string;
  redriveId?: string;
}

/** The fixed module's pipeline compiled as the job's plan was (same parallelism and fusion); it must be the same pipeline. */
async function fixedPlan(modulePath: string, like: PhysicalPlan): Promise<{ pipeline: Pipeline; plan: PhysicalPlan }> {
  const pipeline = await loadPipeline(modulePath, like.pipeline);
  const { plan } = pipeline.compile({ parallelism: like.parallelism, fusion: like.fusion });
  return { pipeline, plan };
}

/** Where a bounded redrive runs: the plan, its task queue, and the worker this process starts for it (with `--module`). */
async function boundedTarget(client: SageClient, config: SageConfig, job: BoundedJobRef, flags: RedriveFlags, logger: Logger) {
  if (!flags.module) {
    if ((await taskQueuePollers(client.temporal, client.config.temporal.namespace, job.taskQueue)) === 0) {
      throw new RedriveRefusedError(
        `no worker serves task queue ${job.taskQueue}: start \`sage worker <module>\` for pipeline ${job.pipeline}, or pass --module <module> to serve the redrive from this process`,
      );
    }
    return { plan: job.plan, taskQueue: job.taskQueue, worker: null as InProcessWorker | null, through: `the job's plan ${job.plan.hash.slice(0, 12)}` };
  }
  const { pipeline, plan } = await fixedPlan(flags.module, job.plan);
  // A fixed plan gets its own task queue: the job's workers (an older plan) must not pick up its tasks.
  const taskQueue = plan.hash === job.plan.hash ? job.taskQueue : `${job.taskQueue}.fix-${plan.hash.slice(0, 12)}`;
  const worker = await startInProcessWorker(pipeline, { ...config, temporal: { ...config.temporal, "task-queue": taskQueue } }, logger);
  const through =
    plan.hash === job.plan.hash ? `the job's plan ${plan.hash.slice(0, 12)} (${flags.module})` : `the fixed plan ${plan.hash.slice(0, 12)} of ${flags.module}`;
  return { plan, taskQueue, worker, through };
}

/** A bounded redrive: started (or found), followed to its end, reported. */
async function redriveBounded(client: SageClient, config: SageConfig, job: BoundedJobRef, flags: RedriveFlags): Promise<void> {
  const logger = cliLogger(config, "dlq");
  const target = await boundedTarget(client, config, job, flags, logger);
  try {
    const filter = filterOf(flags);
    const redrive = flags.redriveId ?? redriveIdOf(job.jobId, filter, target.plan.hash);
    const start = await startBoundedRedrive({ client, dataDir: config["data-dir"], job, target, filter, redrive });
    if (!start || start.record.letters.length === 0) {
      process.stdout.write(
        flags.json ? `${JSON.stringify({ redrive, sent: 0, refused: start?.refused ?? [] })}\n` : `redrive ${redrive}: no outstanding dead letter matches\n`,
      );
      for (const r of start?.refused ?? []) process.stderr.write(`  not re-drivable: ${r.id}: ${r.reason}\n`);
      return;
    }
    const say = (m: string) => process.stderr.write(`${m}\n`);
    say(`redrive ${redrive} of job ${job.jobId}: ${start.record.letters.length} dead letter(s) through ${target.through}`);
    say(
      start.started
        ? `started ${start.record.workflowId}`
        : `${start.record.workflowId} was started before (an interrupted redrive): waiting for it, nothing is sent twice`,
    );
    for (const r of start.refused) say(`  not re-drivable: ${r.id}: ${r.reason}`);
    let result: JobResult;
    try {
      result = (await start.handle.result()) as JobResult;
    } catch (err) {
      process.stderr.write(`sage: redrive ${redrive} failed: ${failureMessage(err)}\n`);
      process.exitCode = 1;
      return;
    }
    const report = {
      redrive,
      workflowId: start.record.workflowId,
      sent: start.record.letters.length,
      failedAgain: result.deadLetters,
      deadLetterPath: result.deadLetterPath,
      outputs: result.outputs,
    };
    const outputs = Object.entries(result.outputs).map(([sink, path]) => `  ${sink}: appended to ${path}`);
    process.stdout.write(
      flags.json
        ? `${JSON.stringify(report)}\n`
        : [
            `redrive ${redrive}: ${report.sent} sent, ${report.failedAgain} failed again${report.deadLetterPath ? ` (${report.deadLetterPath})` : ""}`,
            ...outputs,
          ].join("\n") + "\n",
    );
  } finally {
    await target.worker?.stop();
  }
}

/** The running streaming job a redrive sends into: the job itself, or with `--module` the one running the fixed plan. */
async function streamingTarget(client: SageClient, job: StreamingJobRef, flags: RedriveFlags): Promise<{ jobId: string; plan: PhysicalPlan }> {
  if (!flags.module) {
    if (!job.running)
      throw new RedriveRefusedError(`streaming job ${job.jobId} is not running; re-drive into the job that runs its pipeline now with --module <its module>`);
    return { jobId: job.jobId, plan: job.plan };
  }
  for (const running of await StreamJobHandle.find(client, job.pipeline)) {
    const memo = (await client.temporal.workflow.getHandle(running.workflowIds[0]!).describe()).memo;
    const plan = memo?.plan as PhysicalPlan | undefined;
    if (!plan) continue;
    const fixed = await fixedPlan(flags.module, plan);
    if (fixed.plan.hash === plan.hash) return { jobId: running.jobId, plan };
  }
  throw new RedriveRefusedError(
    `no running streaming job of pipeline ${job.pipeline} runs the plan of ${flags.module}: start it first (\`sage run ${flags.module}\` or \`sage shim\` and \`sage worker\`), then re-drive into it`,
  );
}

/** A streaming redrive: sent (or resumed) transactionally, reported. */
async function redriveStreaming(client: SageClient, config: SageConfig, job: StreamingJobRef, kafka: KafkaClient, flags: RedriveFlags): Promise<void> {
  const target = await streamingTarget(client, job, flags);
  const filter = filterOf(flags);
  const redrive = flags.redriveId ?? redriveIdOf(job.jobId, filter, target.jobId);
  const report = await redriveStream({
    kafka,
    pipeline: job.pipeline,
    deadLetterTopic: deadLetterTopicOf(config, job.pipeline),
    job: job.jobId,
    target: target.jobId,
    plan: target.plan,
    filter,
    redrive,
  });
  for (const r of report.refused) process.stderr.write(`  not re-drivable: ${r.id}: ${r.reason}\n`);
  if (flags.json) {
    process.stdout.write(`${JSON.stringify({ ...report, target: target.jobId })}\n`);
    return;
  }
  const into = `job ${target.jobId}${target.jobId === job.jobId ? "" : " (the fixed version)"}`;
  process.stdout.write(
    report.alreadyDone
      ? `redrive ${redrive} had finished before (${report.sentBefore} sent): nothing sent again\n`
      : `redrive ${redrive}: ${report.sent} dead letter(s) sent into ${into}${report.sentBefore > 0 ? ` (${report.sentBefore} more were sent by the interrupted run)` : ""}; records that fail again come back to the dead letters with their history\n`,
  );
}

/** `sage dlq redrive <job>`. */
export async function dlqRedriveCommand(id: string, flags: RedriveFlags): Promise<void> {
  if (flags.redriveId !== undefined && !/^[A-Za-z0-9_.-]+$/.test(flags.redriveId))
    throw new UsageError(`--redrive-id "${flags.redriveId}" must match [A-Za-z0-9_.-]+`);
  await withJob(flags, id, async ({ client, config, job, kafka }) =>
    job.kind === "bounded" ? redriveBounded(client, config, job, flags) : redriveStreaming(client, config, job, kafka(), flags),
  );
}
