/**
 * One side of a what-if of a bounded job: a pipeline run in this process over the splits the job
 * recorded (its `sage:splits` result), by the stage runner itself, under a job id of its own, so
 * every sink shard, dead letter and edge batch is staged in the what-if's staging directory, read
 * back as the side's outputs and removed; nothing is published to the job's sinks. Each stage unit
 * is looked up in the memo first, as for streaming jobs. File sinks only, no keyed operators.
 */
import { createHash } from "node:crypto";
import { readFile, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { runStage } from "../../activities/stage/run-stage.js";
import { resolvePlanString } from "../../core/api/params.js";
import { canonicalJson } from "../../core/plan/hash.js";
import { sentBatches, type SplitRef, type SplitsByStage, type StageInput, type StageOutput } from "../../core/plan/job.js";
import type { PhysicalPlan, Stage } from "../../core/plan/physical.js";
import { keyedOperatorsOf } from "../../core/plan/stream.js";
import { stageUnitKey } from "../../core/whatif/stage-key.js";
import type { WhatifOutput } from "../../core/whatif/output-diff.js";
import { jobStagingDir, shardFileName } from "../../connectors/file/staging.js";
import { readEdgeBatch } from "../../connectors/file/edge-batches.js";
import { readUsage } from "../../connectors/llm/usage-ledger.js";
import { InputUnavailableError, WhatifUnsupportedError } from "./errors.js";
import type { MemoMessage } from "./stage-memo.js";
import { openSide, type SideBasics, type WhatifSide } from "./whatif-run.js";

/** The output name of a bounded job's dead letters in a what-if's diff. */
export const BOUNDED_DEAD_LETTERS = "dead letters";

/** One split a bounded what-if reads, with the hash of what it reads and a name for the diff. */
export interface SplitUnit {
  ref: SplitRef;
  /** The shard the job ran it as (`<stage>-<index>`). */
  shard: string;
  /** Hash of the split: its descriptor and, for a file, the file's size and modification time. */
  inputHash: string;
  /** Where its outputs came from, in the diff: `<file>@<start>-<end>`, or `split <shard>`. */
  origin: string;
}

/** Refuses what the in-process runner cannot re-run of a bounded job: a sink other than a file, keyed operators. */
export function checkBoundedWhatifPlan(plan: PhysicalPlan): void {
  const uncaptured = plan.nodes.filter((n) => n.sink && n.sink.kind !== "file");
  if (uncaptured.length > 0) {
    throw new WhatifUnsupportedError(
      `pipeline "${plan.pipeline}" writes sink "${uncaptured[0]!.name}" (${uncaptured[0]!.sink!.kind}), which a what-if cannot capture: ` +
        `sage whatif re-runs bounded pipelines whose sinks are files`,
    );
  }
  const keyed = plan.stages.flatMap(keyedOperatorsOf);
  if (keyed.length > 0 || plan.edges.some((e) => e.keyed)) {
    throw new WhatifUnsupportedError(
      `pipeline "${plan.pipeline}" has keyed (stateful) operators (${keyed.join(", ") || "a keyBy"}): sage whatif re-runs stateless pipelines only`,
    );
  }
}

/** The job's splits as what-if units; a file split whose file is gone fails with `InputUnavailableError`. */
export async function splitUnitsOf(splits: SplitsByStage): Promise<SplitUnit[]> {
  const units: SplitUnit[] = [];
  for (const [stage, refs] of Object.entries(splits).sort(([a], [b]) => a.localeCompare(b))) {
    for (const ref of [...refs].sort((a, b) => a.index - b.index)) {
      const shard = `${stage}-${String(ref.index).padStart(6, "0")}`;
      const d = ref.descriptor;
      const file =
        d !== null && typeof d === "object" && !Array.isArray(d) && typeof d.path === "string" ? (d as { path: string; start?: unknown; end?: unknown }) : null;
      let version = "";
      if (file) {
        const info = await stat(file.path).catch(() => null);
        if (!info) throw new InputUnavailableError(file.path, shard);
        if (typeof file.end === "number" && info.size < file.end) throw new InputUnavailableError(file.path, shard, info.size, file.end);
        version = `${info.size}:${info.mtimeMs}`;
      }
      units.push({
        ref,
        shard,
        inputHash: createHash("sha256")
          .update(canonicalJson({ stage, index: ref.index, descriptor: d, version }))
          .digest("hex"),
        origin: file ? `${file.path}@${String(file.start)}-${String(file.end)}` : `split ${shard}`,
      });
    }
  }
  return units;
}

/** What one bounded side is run with. */
export interface BoundedSideOptions extends SideBasics {
  units: readonly SplitUnit[];
}

/** The lines of a staged shard file (none when the unit wrote none). */
async function linesOf(path: string): Promise<string[]> {
  try {
    return (await readFile(path, "utf8")).split("\n").filter((l) => l.length > 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw err;
  }
}

/** A captured line as an output of the diff. */
function toOutput(m: MemoMessage, origin: string): WhatifOutput {
  let value: unknown = m.value;
  try {
    value = JSON.parse(m.value ?? "null");
  } catch {
    value = m.value;
  }
  return { topic: m.topic, key: null, value, from: origin };
}

/** Runs `options.pipeline` over the job's splits, capturing its file outputs and dead letters. */
export async function runBoundedWhatifSide(options: BoundedSideOptions): Promise<WhatifSide> {
  const { logger, memo, params } = options;
  const { registry, plan, host, context, hashes, side } = openSide(options, checkBoundedWhatifPlan);
  const staging = jobStagingDir(options.config["data-dir"], plan.pipeline, options.jobId);
  /** Each file sink of a stage: its operator id and the path the job publishes it to (the output's name in the diff). */
  const sinksOf = (stage: Stage) =>
    stage.operators.flatMap((id) => {
      const node = plan.nodes.find((n) => n.id === id);
      return node?.sink?.kind === "file" ? [{ id, path: resolvePlanString(node.sink.path, params, `sink "${node.name}"`) }] : [];
    });

  /** What a unit staged: its sink lines and dead letters as messages, its edge batches inline (the memo outlives the staging). */
  const captured = async (stage: Stage, shard: string, output: StageOutput): Promise<{ output: StageOutput; messages: MemoMessage[] }> => {
    const messages: MemoMessage[] = [];
    for (const sink of sinksOf(stage)) {
      for (const line of await linesOf(join(staging, sink.id, shardFileName(shard)))) messages.push({ topic: sink.path, key: null, value: line });
    }
    for (const line of await linesOf(join(staging, "_dead-letters", shardFileName(shard)))) {
      const letter = JSON.parse(line) as { record?: unknown };
      messages.push({ topic: BOUNDED_DEAD_LETTERS, key: null, value: JSON.stringify(letter.record ?? null) });
    }
    const outputs = { ...output.outputs };
    for (const [edge, ref] of Object.entries(output.refs ?? {})) outputs[edge] = await readEdgeBatch(staging, ref);
    const { refs: _refs, ...rest } = output;
    return { output: { ...rest, outputs }, messages };
  };

  /** Runs (or recalls) one stage unit, then the stages its outputs feed. */
  const run = async (stage: Stage, unit: Omit<StageInput, keyof typeof context | "stage">, inputHash: string, origin: string): Promise<void> => {
    const key = stageUnitKey(hashes.get(stage.id)!, inputHash, params);
    let entry = memo ? await memo.get(key) : null;
    if (entry) side.memoHits++;
    else {
      entry = await captured(stage, unit.shard, await runStage({ ...context, stage: stage.id, ...unit }, host, logger, []));
      side.stageRuns++;
      await memo?.put(key, entry);
    }
    for (const m of entry.messages) side.outputs.push(toOutput(m, origin));
    for (const [edgeKey, sent] of sentBatches(entry.output)) {
      const edge = plan.edges.find((e) => e.fromStage === stage.id && e.id === edgeKey);
      if (!edge || !("batch" in sent)) throw new WhatifUnsupportedError(`stage ${stage.id} sent on edge "${edgeKey}", which a what-if cannot follow`);
      const target = plan.stages.find((s) => s.id === edge.toStage)!;
      const rounds = edge.feedback ? { ...unit.rounds, [edge.toOperator]: (unit.rounds?.[edge.toOperator] ?? 0) + 1 } : unit.rounds;
      const shards = edge.broadcast ? Array.from({ length: target.parallelism }, (_, i) => `${unit.shard}.${edgeKey}@${i}`) : [`${unit.shard}.${edgeKey}`];
      const inputHash = createHash("sha256")
        .update(`${edgeKey}\n${canonicalJson(rounds ?? {})}\n${canonicalJson(sent.batch)}`)
        .digest("hex");
      for (const shard of shards) await run(target, { shard, batch: sent.batch, edge: edgeKey, ...(rounds ? { rounds } : {}) }, inputHash, origin);
    }
  };

  try {
    for (const u of options.units) {
      const stage = plan.stages.find((s) => s.id === u.ref.stage && s.source);
      if (!stage) throw new WhatifUnsupportedError(`pipeline "${plan.pipeline}" has no source stage ${u.ref.stage}, which the job read split ${u.shard} with`);
      await run(stage, { shard: u.shard, split: u.ref }, u.inputHash, u.origin);
    }
  } finally {
    await registry.close();
    await rm(staging, { recursive: true, force: true });
  }
  side.usage = (await readUsage(options.config["data-dir"], plan.pipeline, options.jobId)) ?? side.usage;
  return side;
}
