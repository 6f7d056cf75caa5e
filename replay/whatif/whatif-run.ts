/**
 * One side of a what-if: a pipeline run in this process over the recorded units, by the stage
 * runner itself, with its Kafka writes captured (`CapturedKafka`). Each stage unit is looked up in
 * the memo first and run only when its key is new; downstream stages run on what their upstream
 * unit sent, as the partition workflow runs them. Streaming jobs without keyed state only.
 */
import { createHash } from "node:crypto";
import type { Logger } from "pino";
import { runStage, type StageHost } from "../../activities/stage/run-stage.js";
import { OperatorRegistry } from "../../activities/registry.js";
import { serviceRegistryOf } from "../../activities/services.js";
import type { Pipeline } from "../../core/api/pipeline.js";
import type { SageConfig } from "../../core/config/schema.js";
import { canonicalJson } from "../../core/plan/hash.js";
import { sentBatches, type JobRuntimeOptions, type StageInput, type StreamUnit } from "../../core/plan/job.js";
import { LINEAGE_HEADER, lineageTopicOf, parseLineage } from "../../core/plan/lineage.js";
import type { PhysicalPlan, Stage } from "../../core/plan/physical.js";
import { keyedOperatorsOf, workflowIndexOf } from "../../core/plan/stream.js";
import { stageHashOf, stageUnitKey } from "../../core/whatif/stage-key.js";
import type { WhatifOutput } from "../../core/whatif/output-diff.js";
import { readUsage, type UsageTotals } from "../../connectors/llm/usage-ledger.js";
import { CapturedKafka, type CapturedMessage } from "./captured-kafka.js";
import { WhatifUnsupportedError } from "./errors.js";
import type { RangeUnit } from "./recorded-range.js";
import type { MemoMessage, StageMemo } from "./stage-memo.js";

/** What one side of a what-if is run with. */
/** What every side runs with, streaming or bounded. */
export interface SideBasics {
  pipeline: Pipeline;
  config: SageConfig;
  /** The job id the side runs under (its model calls are ledgered under it, not under the real job). */
  jobId: string;
  params: Record<string, string>;
  parallelism: number;
  fusion: boolean;
  runtime: JobRuntimeOptions;
  /** The memo (null: every stage unit runs). */
  memo: StageMemo | null;
  logger: Logger;
}

export interface WhatifSideOptions extends SideBasics {
  units: readonly RangeUnit[];
  /** The job's dead-letter topic: dead letters are outputs of the diff too, under its name. */
  deadLetterTopic: string;
}

/** What one side produced. */
export interface WhatifSide {
  plan: PhysicalPlan;
  jobId: string;
  outputs: WhatifOutput[];
  /** Stage units run, and those taken from the memo instead. */
  stageRuns: number;
  memoHits: number;
  /** Its model requests, in all and per operator: answered by the endpoint (`requests - cached`) or from the response cache. */
  usage: { total: UsageTotals; operators: Record<string, UsageTotals> };
}

/** Refuses what the in-process runner cannot re-run: no Kafka source, a sink that is not a Kafka topic, keyed (stateful) operators. */
export function checkWhatifPlan(plan: PhysicalPlan): void {
  if (!plan.stages.some((s) => s.source && plan.nodes.find((n) => n.id === s.operators[0])?.source?.kind === "kafka")) {
    throw new WhatifUnsupportedError(`pipeline "${plan.pipeline}" does not read a Kafka source: sage whatif re-runs streaming jobs`);
  }
  // A user sink function or a print sink would reach the world (or this command's stdout): only Kafka sinks are captured.
  const uncaptured = plan.nodes.filter((n) => n.sink && n.sink.kind !== "kafka");
  if (uncaptured.length > 0) {
    throw new WhatifUnsupportedError(
      `pipeline "${plan.pipeline}" writes sink "${uncaptured[0]!.name}" (${uncaptured[0]!.sink!.kind}), which a what-if cannot capture: sage whatif re-runs pipelines whose sinks are Kafka topics`,
    );
  }
  const keyed = plan.stages.flatMap(keyedOperatorsOf);
  if (keyed.length > 0 || plan.edges.some((e) => e.keyed)) {
    throw new WhatifUnsupportedError(
      `pipeline "${plan.pipeline}" has keyed (stateful) operators (${keyed.join(", ") || "a keyBy"}): sage whatif re-runs stateless streaming pipelines only`,
    );
  }
}

/** A captured message for the memo. */
function toMemo({ topic, message: m }: CapturedMessage): MemoMessage {
  const base64: Array<"key" | "value"> = [];
  const text = (v: string | Buffer | null, field: "key" | "value"): string | null => {
    if (v === null || typeof v === "string") return v;
    base64.push(field);
    return v.toString("base64");
  };
  const key = text(m.key, "key");
  const value = text(m.value, "value");
  return { topic, key, value, ...(base64.length > 0 ? { base64 } : {}), ...(m.headers ? { headers: m.headers } : {}) };
}

/** A message as an output of the diff: its value parsed when it is JSON, and where it came from. */
function toOutput(m: MemoMessage, unit: number): WhatifOutput {
  let value: unknown = m.value;
  if (m.value !== null && !m.base64?.includes("value")) {
    try {
      value = JSON.parse(m.value);
    } catch {
      value = m.value;
    }
  }
  const lineage = m.headers?.[LINEAGE_HEADER];
  const source = lineage ? parseLineage(lineage)?.source : null;
  return { topic: m.topic, key: m.key, value, from: source ?? `unit ${unit}` };
}

/** Hash of an edge batch a downstream stage reads. */
function batchHash(edge: string, batch: unknown[]): string {
  return createHash("sha256")
    .update(`${edge}\n${canonicalJson(batch)}`)
    .digest("hex");
}

/**
 * A side's in-process runner: the compiled plan (refused by `check` if a what-if cannot run it), a
 * stage host under the side's own job id whose Kafka writes go to `kafka` (a capture; none for a
 * bounded side), the stage input's common part, each stage's hash for the memo, and the side's
 * empty figures.
 */
export function openSide(o: SideBasics, check: (plan: PhysicalPlan) => void, kafka?: CapturedKafka) {
  const dataDir = o.config["data-dir"];
  const registry = new OperatorRegistry(o.pipeline, o.logger, serviceRegistryOf(o.pipeline, o.config, dataDir, `whatif-${process.pid}`, o.logger));
  const { plan } = registry.compile(o.parallelism, o.fusion);
  check(plan);
  const host: StageHost = {
    registry,
    dataDir,
    logger: o.logger,
    heartbeat: () => {},
    cancelled: () => false,
    ...(kafka ? { kafka: () => kafka } : {}),
    execution: { workflowId: `whatif/${plan.pipeline}/${o.jobId}`, runId: o.jobId, attempt: 1 },
  };
  const context = {
    jobId: o.jobId,
    pipeline: plan.pipeline,
    planHash: plan.hash,
    parallelism: plan.parallelism,
    fusion: plan.fusion,
    params: o.params,
    runtime: o.runtime,
  };
  const hashes = new Map(plan.stages.map((st) => [st.id, stageHashOf(plan, st)] as const));
  const side: WhatifSide = { plan, jobId: o.jobId, outputs: [], stageRuns: 0, memoHits: 0, usage: { total: emptyUsage(), operators: {} } };
  return { registry, plan, host, context, hashes, side };
}

/** Runs `options.pipeline` over the units, capturing its outputs. */
export async function runWhatifSide(options: WhatifSideOptions): Promise<WhatifSide> {
  const { logger, memo } = options;
  const kafka = new CapturedKafka();
  const { registry, plan, host, context, hashes, side } = openSide(options, checkWhatifPlan, kafka);
  const stageOfTopic = new Map<string, Stage>();
  for (const s of plan.stages.filter((x) => x.source)) {
    const source = plan.nodes.find((n) => n.id === s.operators[0])?.source;
    if (source?.kind === "kafka") for (const t of source.topics) stageOfTopic.set(t, s);
  }
  const lineageTopic = lineageTopicOf(plan.pipeline, options.jobId);

  /** Runs (or recalls) one stage unit, then the stages its outputs feed. */
  const run = async (stage: Stage, unit: Omit<StageInput, keyof typeof context | "stage">, inputHash: string, index: number, records: Uint8Array[]) => {
    const key = stageUnitKey(hashes.get(stage.id)!, inputHash, options.params);
    let entry = memo ? await memo.get(key) : null;
    if (entry) side.memoHits++;
    else {
      const output = await runStage({ ...context, stage: stage.id, ...unit }, host, logger, records);
      // The unit's lineage line names this side's run: it is no output, and the memo is shared by both sides.
      entry = {
        output,
        messages: kafka
          .take()
          .filter((m) => m.topic !== lineageTopic)
          .map(toMemo),
      };
      side.stageRuns++;
      await memo?.put(key, entry);
    }
    for (const m of entry.messages) side.outputs.push(toOutput(m, index));
    for (const [edgeKey, sent] of sentBatches(entry.output)) {
      const edge = plan.edges.find((e) => e.fromStage === stage.id && e.id === edgeKey);
      if (!edge || !("batch" in sent)) throw new WhatifUnsupportedError(`stage ${stage.id} sent on edge "${edgeKey}", which a what-if cannot follow`);
      const target = plan.stages.find((s) => s.id === edge.toStage)!;
      await run(
        target,
        { shard: `${unit.shard}.${edgeKey}`, batch: sent.batch, edge: edgeKey, ...(unit.stream ? { stream: unit.stream } : {}) },
        batchHash(edgeKey, sent.batch),
        index,
        [],
      );
    }
  };

  try {
    for (const [index, u] of options.units.entries()) {
      const slice = u.slices[0]!;
      const stage = stageOfTopic.get(slice.topic);
      if (!stage) throw new WhatifUnsupportedError(`pipeline "${plan.pipeline}" has no source reading topic ${slice.topic}`);
      const workflowIndex = workflowIndexOf(slice.partition, plan.parallelism);
      const stream: StreamUnit = { slices: u.slices, workflowIndex, deadLetterTopic: options.deadLetterTopic, lineageTopic };
      await run(stage, { shard: `p${workflowIndex}`, stream }, u.inputHash, index, u.records);
    }
  } finally {
    await registry.close();
  }
  side.usage = (await readUsage(options.config["data-dir"], plan.pipeline, options.jobId)) ?? side.usage;
  return side;
}

/** Usage of a side that made no model request. */
function emptyUsage(): UsageTotals {
  return { requests: 0, cached: 0, inputs: 0, promptTokens: 0, completionTokens: 0, cost: 0, models: [] };
}
