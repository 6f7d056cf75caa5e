/**
 * `sage rerun <workflowId> --recorded`: runs a finished or failed job again as a new job that may
 * use only the model answers the original job recorded: no model is called, and a request the
 * original never made fails the job with an error naming it. With a pipeline module (`--module`),
 * today's version of the pipeline runs, so a change can be debugged without paying the model again.
 */
import { RECORDED_FROM_PARAM } from "../connectors/llm/model-endpoint.js";
import type { Pipeline } from "../core/api/pipeline.js";
import { PIPELINE_WORKFLOW, workflowIdOf, type JobInput } from "../core/plan/job.js";
import { SageJob, type SageClient } from "../client/sage-client.js";
import { UsageError } from "../core/errors.js";
import { startOf } from "./rerun.js";
import { withDecodedPayloads } from "./history-payloads.js";

/** The recorded re-run that was started. */
export interface RecordedRerun {
  job: SageJob;
  /** `<pipeline>/<jobId>` of the job whose record is used. */
  from: string;
}

/** Starts a recorded re-run of `workflowId` (the latest run of it). */
export async function rerunRecorded(client: SageClient, workflowId: string, options: { pipeline?: Pipeline; jobId?: string } = {}): Promise<RecordedRerun> {
  const handle = client.temporal.workflow.getHandle(workflowId);
  const desc = await handle.describe();
  if (desc.status.name === "RUNNING") throw new UsageError(`job ${workflowId} is still RUNNING; a recorded re-run needs a finished or failed job`);
  const history = await handle.fetchHistory();
  const events = await withDecodedPayloads(history.events ?? [], client.temporal.options.loadedDataConverter.payloadCodecs);
  const { input, taskQueue } = startOf(events, workflowId);
  // A recorded re-run of a recorded re-run still reads the first job's record.
  const from = input.params[RECORDED_FROM_PARAM] ?? `${input.plan.pipeline}/${input.jobId}`;
  const jobId = options.jobId ?? `${input.jobId}.recorded-${Date.now().toString(36)}`;
  const params = { ...input.params, [RECORDED_FROM_PARAM]: from };
  if (options.pipeline) {
    if (options.pipeline.name !== input.plan.pipeline) {
      throw new UsageError(`job ${workflowId} ran pipeline "${input.plan.pipeline}", but the module's pipeline is "${options.pipeline.name}"`);
    }
    return { job: await client.submit(options.pipeline, { jobId, params, parallelism: input.plan.parallelism }), from };
  }
  const next: JobInput = { jobId, plan: input.plan, params, runtime: input.runtime };
  const id = workflowIdOf(input.plan.pipeline, jobId);
  const h = await client.temporal.workflow.start(PIPELINE_WORKFLOW, {
    workflowId: id,
    taskQueue,
    args: [next],
    memo: { plan: input.plan, planHash: input.plan.hash, params, recordedFrom: from },
    staticSummary: `sage pipeline ${input.plan.pipeline}, job ${jobId}, recorded re-run of ${from}`,
  });
  return { job: new SageJob(h, input.plan.pipeline, jobId, input.plan, h.firstExecutionRunId), from };
}
