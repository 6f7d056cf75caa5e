/**
 * A streaming job: N partition workflows `sage/<pipeline>/<job>/p<i>`, fed by the shim. This
 * handle queries and stops them; the shim starts them (signal-with-start) as batches arrive.
 */
import { WorkflowFailedError, WorkflowNotFoundError, type WorkflowHandle } from "@temporalio/client";
import type { Pipeline } from "../core/api/pipeline.js";
import type { SageConfig } from "../core/config/schema.js";
import { addCounts, parseWorkflowId, type StageCounts } from "../core/plan/job.js";
import { STREAM_WORKFLOW, partitionWorkflowId, type StreamJobInput, type StreamProgress, type StreamState } from "../core/plan/stream.js";
import { stopSignal, streamProgressQuery } from "../workflows/contract.js";
import type { streamWorkflow } from "../workflows/stream.js";
import { deadLetterTopicOf } from "../connectors/kafka/index.js";
import { lineageTopicOf } from "../core/plan/lineage.js";
import { SEARCH_ATTRIBUTES } from "../client/search-attributes.js";
import { failureMessage, JobFailedError, newJobId, type SageClient } from "../client/sage-client.js";

/** Options of a streaming job. */
export interface StreamJobOptions {
  /** Job id (default: a timestamp); workflow ids are `sage/<pipeline>/<jobId>/p<i>`. */
  jobId?: string;
  params?: Record<string, string>;
  /** Partition workflows (default: execution.parallelism). */
  parallelism?: number;
}

/** Totals over the partition workflows of a job. */
export interface StreamJobProgress {
  workflows: Array<StreamProgress | null>;
  batches: number;
  records: number;
  pending: number;
  duplicatesDropped: number;
  counts: StageCounts;
  deadLetters: number;
  /** Continue-as-new runs summed over workflows. */
  runs: number;
}

/** Sums the progress of partition workflows (null: not started yet). */
export function totalProgress(workflows: Array<StreamProgress | null>): StreamJobProgress {
  const t: StreamJobProgress = { workflows, batches: 0, records: 0, pending: 0, duplicatesDropped: 0, counts: {}, deadLetters: 0, runs: 0 };
  for (const w of workflows) {
    if (!w) continue;
    t.batches += w.batches;
    t.records += w.records;
    t.pending += w.pending;
    t.duplicatesDropped += w.duplicatesDropped;
    t.deadLetters += w.deadLetters;
    t.runs += w.runs;
    addCounts(t.counts, w.counts);
  }
  return t;
}

/** A handle on the partition workflows of a streaming job: progress, stop, result. */
export class StreamJobHandle {
  constructor(
    readonly client: SageClient,
    readonly pipelineName: string,
    readonly jobId: string,
    readonly workflowIds: string[],
  ) {}

  /** The running streaming jobs whose pipeline or job id is `name` (visibility query), by job. */
  static async find(client: SageClient, name: string): Promise<StreamJobHandle[]> {
    const clean = name.replace(/"/g, "");
    const query = `WorkflowType = "${STREAM_WORKFLOW}" AND ExecutionStatus = "Running" AND (${SEARCH_ATTRIBUTES.pipeline.name} = "${clean}" OR ${SEARCH_ATTRIBUTES.jobId.name} = "${clean}")`;
    const byJob = new Map<string, { pipeline: string; jobId: string; highest: number }>();
    for await (const w of client.temporal.workflow.list({ query })) {
      const id = parseWorkflowId(w.workflowId);
      if (id?.partition === undefined) continue;
      const key = `${id.pipeline}/${id.jobId}`;
      const job = byJob.get(key) ?? { pipeline: id.pipeline, jobId: id.jobId, highest: 0 };
      job.highest = Math.max(job.highest, id.partition);
      byJob.set(key, job);
    }
    // Partition workflows that never got a batch have not started: include every index up to the highest seen.
    return [...byJob.values()].map(
      ({ pipeline, jobId, highest }) =>
        new StreamJobHandle(
          client,
          pipeline,
          jobId,
          Array.from({ length: highest + 1 }, (_, i) => partitionWorkflowId(pipeline, jobId, i)),
        ),
    );
  }

  /** The handle of partition workflow `index` (its latest run). */
  handle(index: number): WorkflowHandle<typeof streamWorkflow> {
    return this.client.temporal.workflow.getHandle<typeof streamWorkflow>(this.workflowIds[index]!);
  }

  /** Progress of each partition workflow (null where it has not started). */
  async progress(): Promise<StreamJobProgress> {
    const each = await Promise.all(
      this.workflowIds.map((_, i) =>
        this.handle(i)
          .query(streamProgressQuery)
          .catch((err: unknown) => {
            if (err instanceof WorkflowNotFoundError) return null;
            throw err;
          }),
      ),
    );
    return totalProgress(each);
  }

  /** Asks every partition workflow to finish the batches it accepted and stop; the shim notices and drains. */
  async stop(): Promise<void> {
    await Promise.all(
      this.workflowIds.map((_, i) =>
        this.handle(i)
          .signal(stopSignal)
          .catch((err: unknown) => {
            if (!(err instanceof WorkflowNotFoundError)) throw err;
          }),
      ),
    );
  }

  /** Waits until every started partition workflow has stopped; their final progress. */
  async result(): Promise<StreamJobProgress> {
    const each = await Promise.all(
      this.workflowIds.map(async (id, i) => {
        try {
          return await this.handle(i).result();
        } catch (err) {
          if (err instanceof WorkflowNotFoundError) return null;
          if (err instanceof WorkflowFailedError) throw new JobFailedError(id, failureMessage(err.cause ?? err), err);
          throw err;
        }
      }),
    );
    return totalProgress(each);
  }
}

/** A streaming job prepared from its pipeline: the inputs the shim starts partition workflows with. */
export class StreamJob extends StreamJobHandle {
  constructor(
    client: SageClient,
    readonly pipeline: Pipeline,
    jobId: string,
    /** Input of partition workflow i is `inputs[i]`. */
    readonly inputs: StreamJobInput[],
  ) {
    super(
      client,
      pipeline.name,
      jobId,
      inputs.map((_, i) => partitionWorkflowId(pipeline.name, jobId, i)),
    );
  }

  /** Sets the state each partition workflow starts with (a job started from a savepoint), before the shim starts it. */
  startFrom(states: readonly StreamState[]): void {
    if (states.length !== this.inputs.length) throw new Error(`startFrom: ${states.length} states for ${this.inputs.length} partition workflows`);
    this.inputs.forEach((input, i) => (input.state = states[i]!));
  }

  /** Compiles the pipeline and prepares the job (nothing starts until the shim delivers a batch). */
  static create(client: SageClient, pipeline: Pipeline, options: StreamJobOptions = {}): StreamJob {
    const config: SageConfig = client.config;
    const compiled = pipeline.compile({ parallelism: options.parallelism ?? config.execution.parallelism, fusion: config.execution.fusion });
    const jobId = options.jobId ?? newJobId();
    const workflows = compiled.plan.parallelism;
    const inputs = Array.from({ length: workflows }, (_, index): StreamJobInput => ({
      jobId,
      plan: compiled.plan,
      params: options.params ?? {},
      runtime: client.runtimeOptions(),
      stream: {
        deadLetterTopic: deadLetterTopicOf(config, pipeline.name),
        ...(config.kafka.lineage ? { lineageTopic: lineageTopicOf(pipeline.name, jobId) } : {}),
        ...(config.kafka.lineage && config.kafka["lineage-inputs"] ? { lineageInputs: true } : {}),
      },
      index,
      workflows,
    }));
    return new StreamJob(client, pipeline, jobId, inputs);
  }
}
