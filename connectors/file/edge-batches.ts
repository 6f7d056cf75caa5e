/**
 * Claim check for the records a bounded job's stage sends along an edge to the next stage: they
 * are written, gzip'd JSON lines, to a file in the job's staging directory, and only a reference
 * (file, count, bytes) enters workflow history. The staging directory is removed at commit or
 * abort, like the sink shards beside it. A retried stage rewrites its file whole (temporary file,
 * then rename), with the same content, so the downstream stage never reads a partial batch.
 */
import { gunzip, gzip } from "node:zlib";
import { promisify } from "node:util";
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { SourceError } from "../../core/errors.js";
import type { EdgeBatchRef } from "../../core/plan/job.js";
import { shardFileName } from "./staging.js";

const gzipAsync = promisify(gzip);
const gunzipAsync = promisify(gunzip);

/** Writes the JSON lines bound for downstream shard `shard`; returns the reference that travels in history. */
export async function writeEdgeBatch(stagingDir: string, shard: string, lines: readonly string[]): Promise<EdgeBatchRef> {
  const file = join("_edges", `${shardFileName(shard)}.gz`);
  const path = join(stagingDir, file);
  const text = lines.join("\n");
  const data = await gzipAsync(text, { level: 1 });
  await mkdir(dirname(path), { recursive: true });
  await writeFile(`${path}.tmp`, data);
  await rename(`${path}.tmp`, path);
  return { file, count: lines.length, bytes: data.length };
}

/** Reads the records a reference points at. */
export async function readEdgeBatch(stagingDir: string, ref: EdgeBatchRef): Promise<unknown[]> {
  let data: Buffer;
  try {
    data = await readFile(join(stagingDir, ref.file));
  } catch (err) {
    throw new SourceError(
      `edge batch ${ref.file} (${ref.count} records) is missing from ${stagingDir}: the data dir must be shared by every worker of the job`,
      {
        cause: err,
        retriable: true,
      },
    );
  }
  const text = (await gunzipAsync(data)).toString("utf8");
  const records = text.length === 0 ? [] : text.split("\n").map((line) => JSON.parse(line) as unknown);
  if (records.length !== ref.count)
    throw new SourceError(`edge batch ${ref.file} holds ${records.length} records, its reference says ${ref.count}`, { retriable: true });
  return records;
}
