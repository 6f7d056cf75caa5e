/**
 * `sage whatif` of a bounded job: the splits its latest run listed (the `sage:splits` result in its
 * history) re-run through the pipeline it ran (`--base`, plan hash checked) and through a changed
 * one, both in this process (`bounded-run.ts`), and their outputs diffed record by record. The
 * job's sinks are never written; the memo and the response cache work as for streaming jobs.
 */
import { defaultPayloadConverter } from "@temporalio/common";
import proto from "@temporalio/proto";
import type { Logger } from "pino";
import type { SageClient } from "../../client/sage-client.js";
import type { Pipeline } from "../../core/api/pipeline.js";
import type { SageConfig } from "../../core/config/schema.js";
import { UsageError } from "../../core/errors.js";
import { SPLITS_ACTIVITY, type JobRuntimeOptions, type SplitsByStage } from "../../core/plan/job.js";
import { diffOutputs } from "../../core/whatif/output-diff.js";
import { withDecodedPayloads } from "../history-payloads.js";
import { checkBoundedWhatifPlan, runBoundedWhatifSide, splitUnitsOf } from "./bounded-run.js";
import { StageMemo } from "./stage-memo.js";
import { summaryOf, type WhatifJob, type WhatifReport } from "./whatif.js";

const EventType = proto.temporal.api.enums.v1.EventType;

/** The splits a bounded job's latest run listed, from its history (the job's recorded input). */
export async function recordedSplits(client: SageClient, workflowId: string): Promise<SplitsByStage> {
  const history = await client.temporal.workflow.getHandle(workflowId).fetchHistory();
  const events = await withDecodedPayloads(history.events ?? [], client.temporal.options.loadedDataConverter.payloadCodecs);
  const scheduled = new Set<string>();
  for (const e of events) {
    if (e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED && e.activityTaskScheduledEventAttributes?.activityType?.name === SPLITS_ACTIVITY) {
      scheduled.add(String(e.eventId));
    } else if (e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED) {
      const a = e.activityTaskCompletedEventAttributes!;
      const first = a.result?.payloads?.[0];
      if (scheduled.has(String(a.scheduledEventId)) && first) return defaultPayloadConverter.fromPayload<SplitsByStage>(first);
    }
  }
  throw new UsageError(`job ${workflowId} has no recorded splits in its latest run's history (it listed none before it stopped): nothing to re-run`);
}

/** What `whatIfBounded` is given. */
export interface BoundedWhatifOptions {
  config: SageConfig;
  job: WhatifJob;
  /** The splits the job read (`recordedSplits`). */
  splits: SplitsByStage;
  base: Pipeline;
  changed: Pipeline;
  runtime: JobRuntimeOptions;
  memo: boolean;
  logger: Logger;
}

/** Runs the what-if of a bounded job and diffs the two sides. */
export async function whatIfBounded(o: BoundedWhatifOptions): Promise<WhatifReport> {
  const { job } = o;
  const compile = (p: Pipeline) => p.compile({ parallelism: job.plan.parallelism, fusion: job.plan.fusion }).plan;
  const compiledBase = compile(o.base);
  if (compiledBase.hash !== job.plan.hash) {
    throw new UsageError(
      `--base is not the pipeline job ${job.jobId} runs: its plan hash is ${compiledBase.hash.slice(0, 12)}, the job's ${job.plan.hash.slice(0, 12)} ` +
        `(give the module the job was started with)`,
    );
  }
  checkBoundedWhatifPlan(job.plan);
  checkBoundedWhatifPlan(compile(o.changed));
  const units = await splitUnitsOf(o.splits);
  const memo = o.memo ? new StageMemo(o.config["data-dir"]) : null;
  const stamp = new Date().toISOString().replace(/[-:.]/g, "");
  const side = (pipeline: Pipeline, label: string) =>
    runBoundedWhatifSide({
      pipeline,
      config: o.config,
      jobId: `${job.jobId}.whatif-${stamp}-${label}`,
      params: job.params,
      parallelism: job.plan.parallelism,
      fusion: job.plan.fusion,
      runtime: o.runtime,
      units,
      memo,
      logger: o.logger,
    });
  const base = await side(o.base, "base");
  const changed = await side(o.changed, "changed");
  const diff = diffOutputs(base.outputs, changed.outputs);
  const count = (kind: string): number => diff.entries.filter((e) => e.kind === kind).length;
  return {
    job: `${job.pipeline}/${job.jobId}`,
    range: [],
    splits: units.map((u) => ({ stage: u.ref.stage, index: u.ref.index, input: u.origin })),
    units: units.length,
    counts: { added: count("added"), removed: count("removed"), changed: count("changed"), same: diff.same },
    base: summaryOf(base),
    changed: summaryOf(changed),
    diff,
  };
}
