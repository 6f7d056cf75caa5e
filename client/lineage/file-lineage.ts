/**
 * Where one line of a bounded job's file output came from: the sink's committed lineage index
 * finds the shard holding the line, and the shard's sidecar names the source record (file and
 * byte range, or index), the split, the job workflow's run and the activity attempt that wrote
 * the published shard, and the model calls made for that record.
 */
import { findLine, positionAt } from "../../connectors/file/line-lineage.js";
import { callsOf, type LlmCallLineage, type ShardLineage, type SourcePoint } from "../../core/plan/lineage.js";
import { UsageError } from "../../core/errors.js";
import { LineageNotFoundError } from "./record-lineage.js";

/** What `sage lineage` answers for one line of a file output. */
export interface FileLineageAnswer {
  /** The line asked about (`path:line`, the path absolute). */
  output: string;
  /** The source record it came from; null past a stage boundary or a `mapBatch` (see the split). */
  source: SourcePoint | null;
  /** The unit of work that wrote it and who ran it. */
  batch: Omit<ShardLineage, "positions" | "llm" | "lines" | "source">;
  /** The model calls that shaped it (its record's and its batch's), with the cached response's key. */
  llm: Array<Omit<LlmCallLineage, "key"> & { key: string }>;
}

/** Reads `path:line`; null when `ref` is not one. */
export function parseFileLine(ref: string): { path: string; line: number } | null {
  const m = /^(.+):(\d+)$/.exec(ref);
  return m ? { path: m[1]!, line: Number(m[2]) } : null;
}

/** The source point of line `k` of a shard, by its sidecar. */
function sourceOf(lineage: ShardLineage, k: number): SourcePoint | null {
  const at = lineage.source === null ? null : positionAt(lineage.positions, k);
  if (!at || !lineage.source) return null;
  if (lineage.source.kind === "file") return { kind: "file", path: lineage.source.path, start: at.start, end: at.start + Math.max(0, at.length) };
  return { kind: lineage.source.kind, name: lineage.source.name, index: at.start };
}

/** The lineage of output line `ref` (`path:line`) of bounded job `jobId` of `pipeline`, from the data dir `dataDir`. */
export async function fileLineage(dataDir: string, pipeline: string, jobId: string, ref: string): Promise<FileLineageAnswer> {
  const at = parseFileLine(ref);
  if (!at) throw new UsageError(`"${ref}" is not an output line: give path:line`);
  const found = await findLine(dataDir, pipeline, jobId, at.path, at.line);
  if (typeof found === "string") throw new LineageNotFoundError(found);
  const output = `${found.index.target}:${at.line}`;
  if (!found.lineage) throw new LineageNotFoundError(`${output} is in shard ${found.shard}, which has no lineage that matches it (written with lineage off)`);
  const { positions: _positions, llm, lines: _lines, source: _source, ...batch } = found.lineage;
  const source = sourceOf(found.lineage, found.lineInShard);
  const key = source === null ? null : source.kind === "file" ? String(source.start) : String(source.index);
  return { output, source, batch, llm: callsOf(llm, key).map((c) => ({ ...c, key: c.key ?? c.request })) };
}
