/**
 * A streaming job: N partition workflows `sage/<pipeline>/<job>/p<i>`, fed by the shim. This
 * handle queries and stops them; the shim starts them (signal-with-start) as batches arrive.
 */
import { WorkflowFailedError, WorkflowNotFoundError, type WorkflowHandle } from "@temporalio/client";
import type { Pipeline } from "../core/api/pipeline.js";
import type { SageConfig } from "../core/config/schema.js";
import { PROGRESS_QUERY, type StageCounts } from "../core/plan/job.js";
import { STOP_SIGNAL, STREAM_WORKFLOW, partitionWorkflowId, type StreamJobInput, type StreamProgress } from "../core/plan/stream.js";
import { addCounts } from "../core/plan/job.js";
import { deadLetterTopicOf } from "../connectors/kafka/index.js";
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
    const byJob = new Map<string, Set<string>>();
    for await (const w of client.temporal.workflow.list({ query })) {
      const m = /^sage\/([^/]+)\/([^/]+)\/p\d+$/.exec(w.workflowId);
      if (!m) continue;
      const key = `${m[1]}/${m[2]}`;
      if (!byJob.has(key)) byJob.set(key, new Set());
      byJob.get(key)!.add(w.workflowId);
    }
    return [...byJob].map(([key, ids]) => {
      const [pipeline = "", jobId = ""] = key.split("/");
      // Partition workflows that never got a batch have not started: include every index up to the highest seen.
      const highest = Math.max(...[...ids].map((id) => Number(/p(\d+)$/.exec(id)![1])));
      return new StreamJobHandle(
        client,
        pipeline,
        jobId,
        Array.from({ length: highest + 1 }, (_, i) => partitionWorkflowId(pipeline, jobId, i)),
      );
    });
  }

  handle(index: number): WorkflowHandle {
    return this.client.temporal.workflow.getHandle(this.workflowIds[index]!);
  }

  /** Progress of each partition workflow (null where it has not started). */
  async progress(): Promise<StreamJobProgress> {
    const each = await Promise.all(
      this.workflowIds.map((_, i) =>
        this.handle(i)
          .query<StreamProgress>(PROGRESS_QUERY)
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
          .signal(STOP_SIGNAL)
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
          return (await this.handle(i).result()) as StreamProgress;
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
      stream: { deadLetterTopic: deadLetterTopicOf(config, pipeline.name) },
      index,
      workflows,
    }));
    return new StreamJob(client, pipeline, jobId, inputs);
  }
}
