/**
 * The job a `sage dlq` command names, found on the server by its workflow id or by the `SageJobId`
 * search attribute: bounded (one workflow) or streaming (its partition workflows), with the plan
 * and parameters from its memo, its task queue and, for a finished bounded job, where it published
 * its dead letters.
 */
import { WorkflowNotFoundError } from "@temporalio/client";
import { UsageError } from "../../core/errors.js";
import { PIPELINE_WORKFLOW, parseWorkflowId, workflowIdOf, type JobResult } from "../../core/plan/job.js";
import type { PhysicalPlan } from "../../core/plan/physical.js";
import { STREAM_WORKFLOW } from "../../core/plan/stream.js";
import type { SageClient } from "../sage-client.js";
import { SEARCH_ATTRIBUTES } from "../search-attributes.js";

/** What both kinds of job have. */
interface JobRefBase {
  pipeline: string;
  jobId: string;
  plan: PhysicalPlan;
  params: Record<string, string>;
  taskQueue: string;
}

/** A bounded job. */
export interface BoundedJobRef extends JobRefBase {
  kind: "bounded";
  workflowId: string;
  /** Temporal status: RUNNING, COMPLETED, FAILED, ... */
  status: string;
  /** The published dead-letter file (null: none published, or the job has not finished). */
  deadLetterPath: string | null;
}

/** A streaming job. */
export interface StreamingJobRef extends JobRefBase {
  kind: "streaming";
  /** Its partition workflows seen on the server. */
  workflowIds: string[];
  /** True while any of them runs. */
  running: boolean;
}

/** A job `sage dlq` works on. */
export type JobRef = BoundedJobRef | StreamingJobRef;

/** Workflows carrying `SageJobId = jobId`: id, type and status. */
async function workflowsOfJob(client: SageClient, jobId: string) {
  const out: Array<{ workflowId: string; type: string; status: string }> = [];
  const query = `${SEARCH_ATTRIBUTES.jobId.name} = "${jobId.replace(/"/g, "")}"`;
  for await (const w of client.temporal.workflow.list({ query })) {
    if (!out.some((o) => o.workflowId === w.workflowId)) out.push({ workflowId: w.workflowId, type: w.type, status: w.status.name });
  }
  return out;
}

/** Plan, parameters, task queue and status of a workflow, from its description. */
async function described(client: SageClient, workflowId: string) {
  const d = await client.temporal.workflow.getHandle(workflowId).describe();
  const plan = d.memo?.plan as PhysicalPlan | undefined;
  if (!plan) throw new UsageError(`${workflowId} has no plan in its memo: it was not started by Sage`);
  const redriveOf = typeof d.memo?.redriveOf === "string" ? d.memo.redriveOf : null;
  if (redriveOf) {
    throw new UsageError(
      `${workflowId} is redrive ${String(d.memo?.redrive)} of job ${redriveOf}: its dead letters are that job's; list and re-drive them with \`sage dlq ... ${redriveOf}\``,
    );
  }
  return { plan, params: (d.memo?.params ?? {}) as Record<string, string>, taskQueue: d.taskQueue, status: d.status.name };
}

/** The workflows of `idOrWorkflowId`: given directly (`sage/<pipeline>/<job>[/p<i>]`), or found by job id. */
async function candidates(client: SageClient, idOrWorkflowId: string) {
  const parts = parseWorkflowId(idOrWorkflowId);
  if (parts) {
    const found = await workflowsOfJob(client, parts.jobId);
    const mine = found.filter((w) => parseWorkflowId(w.workflowId)?.pipeline === parts.pipeline);
    if (mine.length > 0) return mine;
    return [{ workflowId: parts.partition === undefined ? workflowIdOf(parts.pipeline, parts.jobId) : idOrWorkflowId, type: "", status: "" }];
  }
  const found = await workflowsOfJob(client, idOrWorkflowId);
  const pipelines = new Set(found.map((w) => parseWorkflowId(w.workflowId)?.pipeline));
  if (pipelines.size > 1)
    throw new UsageError(`job id "${idOrWorkflowId}" names jobs of several pipelines (${[...pipelines].join(", ")}); give the workflow id`);
  if (found.length === 0) throw new UsageError(`no job with id "${idOrWorkflowId}" (give the workflow id sage/<pipeline>/<jobId>, or check \`sage status\`)`);
  return found;
}

/** Finds the job `idOrWorkflowId` names. */
export async function findJob(client: SageClient, idOrWorkflowId: string): Promise<JobRef> {
  const found = await candidates(client, idOrWorkflowId);
  const streaming = found.filter((w) => w.type === STREAM_WORKFLOW || parseWorkflowId(w.workflowId)?.partition !== undefined);
  if (streaming.length > 0) {
    const ids = streaming.map((w) => w.workflowId).sort();
    const { pipeline, jobId } = parseWorkflowId(ids[0]!)!;
    const d = await described(client, ids[0]!);
    return { kind: "streaming", pipeline, jobId, workflowIds: ids, running: streaming.some((w) => w.status === "RUNNING"), ...d };
  }
  const bounded = found.filter((w) => w.type === PIPELINE_WORKFLOW || w.type === "");
  if (bounded.length !== 1) throw new UsageError(`job "${idOrWorkflowId}" is ambiguous: ${found.map((w) => w.workflowId).join(", ")}; give the workflow id`);
  const workflowId = bounded[0]!.workflowId;
  const { pipeline, jobId } = parseWorkflowId(workflowId)!;
  let d: Awaited<ReturnType<typeof described>>;
  try {
    d = await described(client, workflowId);
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) throw new UsageError(`no job ${workflowId}`);
    throw err;
  }
  let deadLetterPath: string | null = null;
  if (d.status === "COMPLETED") deadLetterPath = ((await client.temporal.workflow.getHandle(workflowId).result()) as JobResult).deadLetterPath;
  return { kind: "bounded", pipeline, jobId, workflowId, deadLetterPath, ...d };
}
