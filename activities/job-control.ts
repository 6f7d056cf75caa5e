/**
 * The control activities of a job: list the splits of its sources, publish its sink outputs and
 * dead letters atomically (idempotent: a retried commit returns the first commit's result), and
 * clean up a cancelled job.
 */
import { mkdir, readFile, rm, writeFile, readdir } from "node:fs/promises";
import { join, resolve } from "node:path";
import type { Logger } from "pino";
import type { SourceFunction } from "../core/api/functions.js";
import { resolvePlanString } from "../core/api/params.js";
import { SinkError, SourceError } from "../core/errors.js";
import type { SplitRef, SplitsByStage, StageInput } from "../core/plan/job.js";
import type { RedriveRuntime } from "../core/plan/redrive.js";
import { fileSplits } from "../connectors/file/source.js";
import { fileSplitsByTokens } from "../connectors/file/token-splits.js";
import { batchTokensOf, tokenRanges } from "../core/plan/batch-tokens.js";
import type { SageConfig } from "../core/config/schema.js";
import { jobStagingDir, publishShards } from "../connectors/file/staging.js";
import { appendShards } from "../connectors/file/append.js";
import { keepSinkLineage, sinkLineageDir } from "../connectors/file/line-lineage.js";
import { encodeRecord } from "./record-codec.js";
import type { OperatorRegistry } from "./registry.js";
import { jobFileName } from "../core/names.js";

/** What the control activities receive (a stage input without a unit of work). */
export type ControlInput = Omit<StageInput, "stage" | "shard" | "split" | "batch"> & { deadLetters?: number };

/** File system errors that retrying the commit cannot cure (a target that is a directory, no permission, ...). */
const PERMANENT_FS_ERRORS: ReadonlySet<string> = new Set(["EISDIR", "ENOTDIR", "EACCES", "EPERM", "EROFS", "ENAMETOOLONG"]);

/** Result of a commit. */
export interface CommitResult {
  outputs: Record<string, string>;
  deadLetterPath: string | null;
}

/** Where a job's dead letters go: the plan's dead-letter sink, the configured path, or the data dir. */
export function deadLetterTarget(input: ControlInput, dataDir: string, planSpec: { kind: string; path?: unknown } | null): string {
  // A redrive job's records that fail again go beside its input, never over the job's own dead letters.
  if (input.runtime.redrive) return resolve(input.runtime.redrive.deadLetters);
  if (planSpec && planSpec.kind === "file") return resolve(resolvePlanString(planSpec.path as string, input.params, "dead-letter sink"));
  if (input.runtime.deadLetterPath) return resolve(input.runtime.deadLetterPath.replace("{pipeline}", input.pipeline).replace("{jobId}", input.jobId));
  return resolve(join(dataDir, "dead-letters", input.pipeline, `${jobFileName(input.jobId)}.jsonl`));
}

/** The splits a user source listed, or a SourceError (a bug in `splits()`: retrying cannot help). */
function checkedSplits(source: string, listed: unknown): unknown[] {
  if (typeof listed !== "object" || listed === null || !(Symbol.iterator in listed)) {
    throw new SourceError(`source "${source}": splits() must return an array of split descriptors, got ${listed === null ? "null" : typeof listed}`);
  }
  const splits = Array.from(listed as Iterable<unknown>);
  try {
    encodeRecord(splits, source);
  } catch (err) {
    throw new SourceError(`source "${source}": splits() must return JSON split descriptors (they enter workflow history): ${(err as Error).message}`);
  }
  return splits;
}

/**
 * Lists the splits of every source stage; also checks that every sink path resolves. With the
 * worker's `llm` configuration, a pipeline whose LLM operators have a tokens-per-minute limit gets
 * file and collection splits sized by estimated tokens too (`core/plan/batch-tokens.ts`).
 */
export async function listSplits(input: ControlInput, registry: OperatorRegistry, logger: Logger, llm?: SageConfig["llm"]): Promise<SplitsByStage> {
  const compiled = registry.resolve(input);
  const { plan } = compiled;
  const sinkPaths = plan.nodes.flatMap((n) => (n.sink?.kind === "file" ? [{ path: n.sink.path, who: `sink "${n.name}"` }] : []));
  if (plan.deadLetter?.kind === "file") sinkPaths.push({ path: plan.deadLetter.path, who: "dead-letter sink" });
  for (const { path, who } of sinkPaths) {
    try {
      resolvePlanString(path, input.params, who);
    } catch (err) {
      throw new SinkError((err as Error).message);
    }
  }
  if (input.runtime.redrive) return redriveSplits(plan, input.runtime.redrive, input.runtime.splitBytes);
  const out: SplitsByStage = {};
  const tokens = llm ? batchTokensOf(compiled.functions, llm) : null;
  for (const stage of plan.stages.filter((s) => s.source)) {
    const node = plan.nodes.find((n) => n.id === stage.operators[0])!;
    const spec = node.source!;
    const crossesHistory = plan.edges.some((e) => e.fromStage === stage.id);
    let descriptors: unknown[];
    if (spec.kind === "file") {
      let path: string;
      try {
        path = resolvePlanString(spec.path, input.params, `source "${node.name}"`);
      } catch (err) {
        throw new SourceError((err as Error).message);
      }
      const budget = crossesHistory ? Math.min(input.runtime.splitBytes, Math.floor(input.runtime.maxBatchBytes / 4)) : input.runtime.splitBytes;
      descriptors = tokens
        ? await fileSplitsByTokens(node.name, path, spec.splitBytes ?? budget, tokens)
        : await fileSplits(node.name, path, spec.splitBytes ?? budget);
    } else if (spec.kind === "collection") {
      const per = crossesHistory ? 500 : Math.max(1, Math.ceil(spec.size / (stage.parallelism * 4)));
      descriptors = [];
      if (tokens) {
        const sizes = (compiled.functions.get(node.id) as readonly unknown[]).map((item) => Buffer.byteLength(JSON.stringify(item) ?? ""));
        descriptors = tokenRanges(sizes, { records: per, bytes: Number.MAX_SAFE_INTEGER }, tokens);
      } else for (let i = 0; i < spec.size; i += per) descriptors.push([i, Math.min(spec.size, i + per)]);
    } else {
      const fn = await registry.function<SourceFunction<unknown>>(compiled, node);
      const ctx = { params: input.params, parallelism: stage.parallelism, logger: logger.child({ operator: node.id }) };
      descriptors = fn.splits ? checkedSplits(node.name, await fn.splits(ctx)) : [null];
    }
    out[stage.id] = descriptors.map((d, index): SplitRef => ({ stage: stage.id, index, descriptor: d as SplitRef["descriptor"] }));
  }
  return out;
}

/** A bounded redrive job's splits: its input file, for each source stage a re-driven record enters by; none for the others. */
async function redriveSplits(plan: { stages: Array<{ id: string; source: boolean }> }, redrive: RedriveRuntime, splitBytes: number): Promise<SplitsByStage> {
  const out: SplitsByStage = {};
  const splits = await fileSplits("redrive input", redrive.input, splitBytes);
  for (const stage of plan.stages.filter((s) => s.source)) {
    const reads = redrive.stages.includes(stage.id) ? splits : [];
    out[stage.id] = reads.map((d, index): SplitRef => ({ stage: stage.id, index, descriptor: d as unknown as SplitRef["descriptor"] }));
  }
  return out;
}

/** Publishes every file sink and the dead letters; safe to retry. */
export async function commitJob(input: ControlInput, registry: OperatorRegistry, dataDir: string): Promise<CommitResult> {
  const { plan } = registry.resolve(input);
  const staging = jobStagingDir(dataDir, input.pipeline, input.jobId);
  const marker = join(staging, "committed.json");
  const earlier = await readFile(marker, "utf8").catch(() => null);
  if (earlier) return JSON.parse(earlier) as CommitResult;
  const result: CommitResult = { outputs: {}, deadLetterPath: null };
  const suffix = `sage-${jobFileName(input.jobId)}`;
  try {
    for (const node of plan.nodes) {
      if (node.sink?.kind !== "file") continue;
      const target = resolve(resolvePlanString(node.sink.path, input.params, `sink "${node.name}"`));
      // A redrive job adds its output to what the job published.
      if (input.runtime.redrive) await appendShards(join(staging, node.id), target, suffix);
      else {
        const shards = await publishShards(join(staging, node.id), target, suffix);
        // Written before the commit marker: a retried commit writes it again.
        await keepSinkLineage(join(staging, node.id), sinkLineageDir(dataDir, input.pipeline, input.jobId, node.id), { target, node: node.id }, shards);
      }
      result.outputs[node.id] = target;
    }
    if ((input.deadLetters ?? 0) > 0) {
      const target = deadLetterTarget(input, dataDir, plan.deadLetter);
      await publishShards(join(staging, "_dead-letters"), target, suffix);
      result.deadLetterPath = target;
    }
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const retriable = code === undefined || !PERMANENT_FS_ERRORS.has(code);
    throw new SinkError(`commit of job "${input.jobId}" failed: ${(err as Error).message}`, { cause: err, retriable });
  }
  await mkdir(staging, { recursive: true });
  await writeFile(marker, JSON.stringify(result));
  for (const entry of await readdir(staging)) if (entry !== "committed.json") await rm(join(staging, entry), { recursive: true, force: true });
  return result;
}

/** Removes the staged output of a cancelled job. */
export async function abortJob(input: ControlInput, dataDir: string): Promise<void> {
  await rm(jobStagingDir(dataDir, input.pipeline, input.jobId), { recursive: true, force: true });
}
