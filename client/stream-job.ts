/**
 * A streaming job: N partition workflows `sage/<pipeline>/<job>/p<i>`, fed by the shim. This
 * handle queries and stops them; the shim starts them (signal-with-start) as batches arrive.
 */
import { WorkflowFailedError, WorkflowNotFoundError, type WorkflowHandle } from "@temporalio/client";
import type { Pipeline } from "../core/api/pipeline.js";
import type { SageConfig } from "../core/config/schema.js";
import { PROGRESS_QUERY, type StageCounts } from "../core/plan/job.js";
import { STOP_SIGNAL, partitionWorkflowId, type StreamJobInput, type StreamProgress } from "../core/plan/stream.js";
import { addCounts } from "../core/plan/job.js";
import { deadLetterTopicOf } from "../connectors/kafka/index.js";
import { failureMessage, JobFailedError, newJobId, type SageClient } from "./sage-client.js";

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

/** A handle on the partition workflows of a streaming job. */
export class StreamJob {
  readonly workflowIds: string[];

  constructor(
    readonly client: SageClient,
    readonly pipeline: Pipeline,
    readonly jobId: string,
    /** Input of partition workflow i is `inputs[i]`. */
    readonly inputs: StreamJobInput[],
  ) {
    this.workflowIds = inputs.map((_, i) => partitionWorkflowId(pipeline.name, jobId, i));
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
