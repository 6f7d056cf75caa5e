/**
 * `sage whatif`: re-runs a recorded range of a streaming job's input through the pipeline it runs
 * (the base) and through a changed one, in this process with every Kafka write captured, and diffs
 * their outputs record by record. The base fills the memo, so the changed side runs again only the
 * stages whose code, configuration or input changed; model requests it repeats are answered from
 * the response cache.
 */
import type { Logger } from "pino";
import type { Pipeline } from "../../core/api/pipeline.js";
import type { SageConfig } from "../../core/config/schema.js";
import { UsageError } from "../../core/errors.js";
import type { JobRuntimeOptions } from "../../core/plan/job.js";
import { lineageTopicOf, type BatchLineage } from "../../core/plan/lineage.js";
import type { PhysicalPlan } from "../../core/plan/physical.js";
import { diffOutputs, type OutputDiff } from "../../core/whatif/output-diff.js";
import type { KafkaClient } from "../../connectors/kafka/client.js";
import { jobBatchesOf, readRecordedRange, unitsOf, type RangeBound } from "./recorded-range.js";
import { StageMemo } from "./stage-memo.js";
import { checkWhatifPlan, runWhatifSide, type WhatifSide } from "./whatif-run.js";

/** The streaming job a what-if reads. */
export interface WhatifJob {
  pipeline: string;
  jobId: string;
  plan: PhysicalPlan;
  params: Record<string, string>;
}

/** What `whatIf` is given. */
export interface WhatifOptions {
  config: SageConfig;
  kafka: KafkaClient;
  job: WhatifJob;
  /** The pipeline the job runs, and the changed one. */
  base: Pipeline;
  changed: Pipeline;
  from?: RangeBound;
  to?: RangeBound;
  runtime: JobRuntimeOptions;
  deadLetterTopic: string;
  /** False: run every stage unit (no memo read or written). */
  memo: boolean;
  /** Most source records in one unit (the job's batch size). */
  maxRecords: number;
  logger: Logger;
}

/** One side's figures. */
export interface WhatifSideSummary {
  pipeline: string;
  /** The job id the side ran under (its model calls are ledgered under it). */
  jobId: string;
  planHash: string;
  stageRuns: number;
  memoHits: number;
  /** Requests the model endpoint answered (paid), and those the response cache answered. */
  modelCalls: number;
  cacheHits: number;
  promptTokens: number;
  completionTokens: number;
  /** Estimated USD of the paid calls (`llm.prices`). */
  cost: number;
  /** Paid calls and cache hits per operator that made any request. */
  operators: Record<string, { calls: number; cacheHits: number }>;
}

/** The result of a what-if. */
export interface WhatifReport {
  job: string;
  /** Each source partition's range `[from, to)` and its record count. */
  range: Array<{ topic: string; partition: number; from: number; to: number; records: number }>;
  units: number;
  counts: { added: number; removed: number; changed: number; same: number };
  base: WhatifSideSummary;
  changed: WhatifSideSummary;
  diff: OutputDiff;
}

function summaryOf(side: WhatifSide): WhatifSideSummary {
  const u = side.usage.total;
  return {
    pipeline: side.plan.pipeline,
    jobId: side.jobId,
    planHash: side.plan.hash,
    stageRuns: side.stageRuns,
    memoHits: side.memoHits,
    modelCalls: u.requests - u.cached,
    cacheHits: u.cached,
    promptTokens: u.promptTokens,
    completionTokens: u.completionTokens,
    cost: u.cost,
    operators: Object.fromEntries(Object.entries(side.usage.operators).map(([op, t]) => [op, { calls: t.requests - t.cached, cacheHits: t.cached }])),
  };
}

/** The job's batch lines (none when it keeps no lineage): a line of any stage lists the source ranges its unit read. */
async function batchLines(kafka: KafkaClient, job: WhatifJob): Promise<BatchLineage[]> {
  const messages = await kafka.readToEnd(lineageTopicOf(job.pipeline, job.jobId)).catch(() => []);
  const lines: BatchLineage[] = [];
  for (const m of messages) {
    try {
      const line = JSON.parse(m.value?.toString("utf8") ?? "") as BatchLineage;
      if (Array.isArray(line.slices)) lines.push(line);
    } catch {
      // Not a batch line: nothing to cut at.
    }
  }
  return lines;
}

/** Runs the what-if and diffs the two sides. */
export async function whatIf(o: WhatifOptions): Promise<WhatifReport> {
  const { job } = o;
  const compiledBase = o.base.compile({ parallelism: job.plan.parallelism, fusion: job.plan.fusion }).plan;
  if (compiledBase.hash !== job.plan.hash) {
    throw new UsageError(
      `--base is not the pipeline job ${job.jobId} runs: its plan hash is ${compiledBase.hash.slice(0, 12)}, the job's ${job.plan.hash.slice(0, 12)} ` +
        `(give the module the job was started with)`,
    );
  }
  checkWhatifPlan(job.plan);
  checkWhatifPlan(o.changed.compile({ parallelism: job.plan.parallelism, fusion: job.plan.fusion }).plan);
  const topics = [...new Set(job.plan.nodes.flatMap((n) => (n.source?.kind === "kafka" ? n.source.topics : [])))];
  const ranges = await readRecordedRange(o.kafka, topics, o.from, o.to);
  const units = unitsOf(ranges, o.maxRecords, jobBatchesOf(await batchLines(o.kafka, job)));
  const memo = o.memo ? new StageMemo(o.config["data-dir"]) : null;
  const stamp = new Date().toISOString().replace(/[-:.]/g, "");
  const side = (pipeline: Pipeline, label: string) =>
    runWhatifSide({
      pipeline,
      config: o.config,
      jobId: `${job.jobId}.whatif-${stamp}-${label}`,
      params: job.params,
      parallelism: job.plan.parallelism,
      fusion: job.plan.fusion,
      runtime: o.runtime,
      units,
      memo,
      deadLetterTopic: o.deadLetterTopic,
      logger: o.logger,
    });
  const base = await side(o.base, "base");
  const changed = await side(o.changed, "changed");
  const diff = diffOutputs(base.outputs, changed.outputs);
  const count = (kind: string): number => diff.entries.filter((e) => e.kind === kind).length;
  return {
    job: `${job.pipeline}/${job.jobId}`,
    range: ranges.map((r) => ({ topic: r.topic, partition: r.partition, from: r.from, to: r.to, records: r.records.length })),
    units: units.length,
    counts: { added: count("added"), removed: count("removed"), changed: count("changed"), same: diff.same },
    base: summaryOf(base),
    changed: summaryOf(changed),
    diff,
  };
}
