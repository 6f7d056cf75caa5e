/**
 * `sage whatif`: re-runs a recorded range of a streaming job's input through a changed pipeline, in
 * this process with every Kafka write captured, and diffs its outputs record by record against a
 * base: the pipeline the job runs, re-run the same way (it fills the memo, so the changed side runs
 * again only the stages whose code, configuration or input changed), or without one the outputs the
 * job itself wrote for the range. Model requests repeated are answered from the response cache.
 */
import type { Logger } from "pino";
import type { Pipeline } from "../../core/api/pipeline.js";
import type { SageConfig } from "../../core/config/schema.js";
import { UsageError } from "../../core/errors.js";
import type { JobRuntimeOptions } from "../../core/plan/job.js";
import { lineageTopicOf, type BatchLineage } from "../../core/plan/lineage.js";
import type { PhysicalPlan } from "../../core/plan/physical.js";
import { diffOutputs, type OutputDiff, type WhatifOutput } from "../../core/whatif/output-diff.js";
import type { KafkaClient } from "../../connectors/kafka/client.js";
import { jobBatchesOf, readRecordedRange, unitsOf, type RangeBound } from "./recorded-range.js";
import { StageMemo } from "./stage-memo.js";
import { checkWhatifPlan, runWhatifSide, type WhatifSide } from "./whatif-run.js";
import { readRecordedOutputs, type JobBatchLine } from "./recorded-outputs.js";
import { retainDirOf } from "../../connectors/kafka/retained-input.js";
import { WhatifUnsupportedError } from "./errors.js";

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
  /** The pipeline the job runs (absent: the base is the outputs the job wrote for the range), and the changed one. */
  base?: Pipeline;
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
  /** True: the job's own outputs for the range, read back from its topics (no stage ran, no model call). */
  recorded: boolean;
  /** Outputs the side gave (sink records and dead letters). */
  outputs: number;
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
  /** Each source partition's range `[from, to)` and its record count (a bounded job: none). */
  range: Array<{ topic: string; partition: number; from: number; to: number; records: number }>;
  /** A bounded job: the splits it read, each with its input (`<file>@<start>-<end>`, or `split <shard>`). */
  splits?: Array<{ stage: string; index: number; input: string }>;
  units: number;
  counts: { added: number; removed: number; changed: number; same: number };
  base: WhatifSideSummary;
  changed: WhatifSideSummary;
  diff: OutputDiff;
}

/** One side's figures, from what it ran. */
export function summaryOf(side: WhatifSide): WhatifSideSummary {
  const u = side.usage.total;
  return {
    recorded: false,
    outputs: side.outputs.length,
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

/** The base side when it is the job's own outputs: no stage ran, no model was called. */
function recordedSummary(job: WhatifJob, outputs: number): WhatifSideSummary {
  return {
    recorded: true,
    outputs,
    pipeline: job.pipeline,
    jobId: job.jobId,
    planHash: job.plan.hash,
    stageRuns: 0,
    memoHits: 0,
    modelCalls: 0,
    cacheHits: 0,
    promptTokens: 0,
    completionTokens: 0,
    cost: 0,
    operators: {},
  };
}

/** The job's batch lines (null: it has no lineage topic): a line of any stage lists the source ranges its unit read. */
async function batchLines(kafka: KafkaClient, job: WhatifJob): Promise<JobBatchLine[] | null> {
  const topic = lineageTopicOf(job.pipeline, job.jobId);
  const admin = await kafka.admin();
  const missing = await admin.missingTopics([topic]).finally(() => admin.close());
  if (missing.length > 0) return null;
  const messages = await kafka.readToEnd(topic);
  const lines: JobBatchLine[] = [];
  for (const m of messages) {
    try {
      const line = JSON.parse(m.value?.toString("utf8") ?? "") as BatchLineage;
      if (Array.isArray(line.slices)) lines.push({ line, offset: Number(m.offset) });
    } catch {
      // Not a batch line: nothing to cut at.
    }
  }
  return lines;
}

/** Runs the what-if and diffs the two sides. */
export async function whatIf(o: WhatifOptions): Promise<WhatifReport> {
  const { job } = o;
  const compiledBase = o.base?.compile({ parallelism: job.plan.parallelism, fusion: job.plan.fusion }).plan;
  if (compiledBase && compiledBase.hash !== job.plan.hash) {
    throw new UsageError(
      `--base is not the pipeline job ${job.jobId} runs: its plan hash is ${compiledBase.hash.slice(0, 12)}, the job's ${job.plan.hash.slice(0, 12)} ` +
        `(give the module the job was started with)`,
    );
  }
  checkWhatifPlan(job.plan);
  checkWhatifPlan(o.changed.compile({ parallelism: job.plan.parallelism, fusion: job.plan.fusion }).plan);
  const topics = [...new Set(job.plan.nodes.flatMap((n) => (n.source?.kind === "kafka" ? n.source.topics : [])))];
  const ranges = await readRecordedRange(o.kafka, topics, o.from, o.to, retainDirOf(o.config["data-dir"], job.pipeline, job.jobId));
  const lines = await batchLines(o.kafka, job);
  if (!o.base && lines === null) {
    throw new WhatifUnsupportedError(
      `job ${job.jobId} has no lineage topic (${lineageTopicOf(job.pipeline, job.jobId)}: it ran with kafka.lineage off), so its outputs cannot be matched to the range: give --base <module the job runs>`,
    );
  }
  const units = unitsOf(ranges, o.maxRecords, jobBatchesOf((lines ?? []).map((l) => l.line)));
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
  let base: WhatifSideSummary;
  let baseOutputs: WhatifOutput[];
  if (o.base) {
    const ran = await side(o.base, "base");
    base = summaryOf(ran);
    baseOutputs = ran.outputs;
  } else {
    // Read before the changed side runs: a job still running adds outputs meanwhile, of batches the range may not hold yet.
    baseOutputs = await readRecordedOutputs({
      kafka: o.kafka,
      plan: job.plan,
      jobId: job.jobId,
      deadLetterTopic: o.deadLetterTopic,
      ranges,
      units,
      lines: lines ?? [],
    });
    base = recordedSummary(job, baseOutputs.length);
  }
  const changed = await side(o.changed, "changed");
  const diff = diffOutputs(baseOutputs, changed.outputs);
  const count = (kind: string): number => diff.entries.filter((e) => e.kind === kind).length;
  return {
    job: `${job.pipeline}/${job.jobId}`,
    range: ranges.map((r) => ({ topic: r.topic, partition: r.partition, from: r.from, to: r.to, records: r.records.length })),
    units: units.length,
    counts: { added: count("added"), removed: count("removed"), changed: count("changed"), same: diff.same },
    base,
    changed: summaryOf(changed),
    diff,
  };
}
