/**
 * Lineage of a bounded job's file outputs: each staged shard has a sidecar (`<shard>.lineage`,
 * written atomically beside it by the attempt that wrote the shard) mapping its lines to source
 * positions; at commit the sidecars of every file sink are copied, with an index of the shards'
 * line counts in the published order, under `<data-dir>/lineage/<pipeline>/<job>/<sink>/`. A line
 * of the published file is found by its shard and its line in that shard. Nothing per record
 * enters workflow history.
 */
import { copyFile, mkdir, readdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { jobFileName } from "../../core/names.js";
import type { ShardLineage } from "../../core/plan/lineage.js";

/** Suffix of a shard's sidecar (not `.jsonl`: publishing concatenates only the shards). */
export const SIDECAR_SUFFIX = ".lineage";

/** The positions of one shard's lines, as they are written (the `positions` of `ShardLineage`). */
export class LinePositions {
  private readonly parts: string[] = [];
  private last = 0;

  /** Notes the next output line: from source position `start` (`length` bytes, -1 for an index), or from none (`start` < 0). */
  add(start: number, length: number): void {
    if (start < 0) {
      this.parts.push("");
      return;
    }
    const delta = (start - this.last).toString(36);
    this.last = start;
    this.parts.push(length < 0 ? delta : `${delta}:${length.toString(36)}`);
  }

  get lines(): number {
    return this.parts.length;
  }

  toString(): string {
    return this.parts.join(",");
  }
}

/** Line `k` (0-based) of a shard's positions: its start (byte or index) and length (-1 for an index), or null for a line with no single source. */
export function positionAt(positions: string, k: number): { start: number; length: number } | null {
  let start = 0;
  const parts = positions.split(",");
  for (let i = 0; i <= k && i < parts.length; i++) {
    const part = parts[i]!;
    if (part === "") {
      if (i === k) return null;
      continue;
    }
    const colon = part.indexOf(":");
    start += parseInt(colon < 0 ? part : part.slice(0, colon), 36);
    if (i === k) return { start, length: colon < 0 ? -1 : parseInt(part.slice(colon + 1), 36) };
  }
  return null;
}

/** Writes the sidecar of the shard at `shardPath` (temporary file, then rename). */
export async function writeSidecar(shardPath: string, lineage: ShardLineage): Promise<void> {
  const path = `${shardPath}${SIDECAR_SUFFIX}`;
  await mkdir(dirname(path), { recursive: true });
  await writeFile(`${path}.tmp`, JSON.stringify(lineage));
  await rename(`${path}.tmp`, path);
}

/** Drops the temporary sidecar of an unfinished shard. */
export async function discardSidecar(shardPath: string): Promise<void> {
  await rm(`${shardPath}${SIDECAR_SUFFIX}.tmp`, { force: true });
}

/** Directory of the committed lineage of a job's file sink `node`. */
export function sinkLineageDir(dataDir: string, pipeline: string, jobId: string, node: string): string {
  return join(dataDir, "lineage", pipeline, jobFileName(jobId), node);
}

/** A published shard: its file name and the lines it holds (counted at publishing). */
export interface PublishedShard {
  name: string;
  lines: number;
}

/** The index of one file sink's committed lineage. */
export interface SinkLineageIndex {
  /** The published file (absolute path). */
  target: string;
  node: string;
  /** The shards in the order they were published; `sidecar` false when the shard has none or one that does not match it. */
  shards: Array<{ name: string; lines: number; sidecar: boolean }>;
}

/**
 * Keeps the lineage of a published file sink: copies the sidecars of `shards` from `stagingDir`
 * to `dir` (a sidecar whose line count is not its shard's, from an attempt that did not write the
 * published shard, is left out) and writes the index last. Safe to repeat (a retried commit).
 */
export async function keepSinkLineage(
  stagingDir: string,
  dir: string,
  index: Omit<SinkLineageIndex, "shards">,
  shards: readonly PublishedShard[],
): Promise<void> {
  const staged = new Set(await readdir(stagingDir).catch(() => [] as string[]));
  if (![...staged].some((n) => n.endsWith(SIDECAR_SUFFIX))) return;
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const kept: SinkLineageIndex["shards"] = [];
  for (const shard of shards) {
    const sidecar = `${shard.name}${SIDECAR_SUFFIX}`;
    let ok = false;
    if (staged.has(sidecar)) {
      const lineage = JSON.parse(await readFile(join(stagingDir, sidecar), "utf8")) as ShardLineage;
      ok = lineage.lines === shard.lines;
      if (ok) await copyFile(join(stagingDir, sidecar), join(dir, sidecar));
    }
    kept.push({ name: shard.name, lines: shard.lines, sidecar: ok });
  }
  const full: SinkLineageIndex = { ...index, shards: kept };
  await writeFile(join(dir, "index.json.tmp"), JSON.stringify(full));
  await rename(join(dir, "index.json.tmp"), join(dir, "index.json"));
}

/** Line `line` (1-based) of the file at `path`, as a job's committed lineage has it. */
export interface FoundLine {
  index: SinkLineageIndex;
  /** The shard holding the line and the line's place in it (0-based). */
  shard: string;
  lineInShard: number;
  /** The shard's sidecar; null when it has none that matches the published shard. */
  lineage: ShardLineage | null;
}

/** Finds line `line` of `path` among the file sinks of job `jobId`; a string says why not. */
export async function findLine(dataDir: string, pipeline: string, jobId: string, path: string, line: number): Promise<FoundLine | string> {
  const root = join(dataDir, "lineage", pipeline, jobFileName(jobId));
  const target = resolve(path);
  if (!Number.isInteger(line) || line < 1) return `line ${line}: lines count from 1`;
  const nodes = await readdir(root).catch(() => [] as string[]);
  for (const node of nodes) {
    const text = await readFile(join(root, node, "index.json"), "utf8").catch(() => null);
    if (text === null) continue;
    const index = JSON.parse(text) as SinkLineageIndex;
    if (index.target !== target) continue;
    let at = line - 1;
    for (const shard of index.shards) {
      if (at >= shard.lines) {
        at -= shard.lines;
        continue;
      }
      const lineage = shard.sidecar ? (JSON.parse(await readFile(join(root, node, `${shard.name}${SIDECAR_SUFFIX}`), "utf8")) as ShardLineage) : null;
      return { index, shard: shard.name, lineInShard: at, lineage };
    }
    const total = index.shards.reduce((n, s) => n + s.lines, 0);
    return `${target} has ${total} line(s) from job ${jobId}; there is no line ${line}`;
  }
  return nodes.length === 0
    ? `job ${jobId} of pipeline ${pipeline} kept no file lineage under ${root} (lineage off, not committed yet, or another data dir)`
    : `no file sink of job ${jobId} wrote ${target}`;
}
