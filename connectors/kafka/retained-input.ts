/**
 * The bounded copy of a streaming job's input that `whatif.retain` keeps, so that `sage whatif` can
 * re-run a range Kafka no longer holds: each committed source batch, as the stage activity received
 * it (the shim's encoded batch), in one file per batch under
 * `<data-dir>/whatif/retain/<pipeline>/<job>/<topic>/<partition>/`, written atomically (a retried
 * unit rewrites the same file). After each write the partition's copy is cut to its bounds: the
 * newest batches up to `bytes` in all, none older than `age`.
 */
import { randomUUID } from "node:crypto";
import { mkdir, readFile, readdir, rename, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { jobFileName } from "../../core/names.js";
import { decodeBatch } from "./batch-codec.js";
import type { ConsumedMessage } from "./client.js";

/** How much of each source partition's input is kept (0: no bound of that kind; both 0: nothing kept). */
export interface RetainBounds {
  bytes: number;
  ageMs: number;
}

/** True when `bounds` keep anything. */
export function retains(bounds: RetainBounds | undefined): bounds is RetainBounds {
  return bounds !== undefined && (bounds.bytes > 0 || bounds.ageMs > 0);
}

/** The directory of one job's retained input. */
export function retainDirOf(dataDir: string, pipeline: string, jobId: string): string {
  return join(dataDir, "whatif", "retain", pipeline, jobFileName(jobId));
}

function partitionDir(dir: string, topic: string, partition: number): string {
  return join(dir, encodeURIComponent(topic), String(partition));
}

const BATCH = /^(\d{20})-(\d{20})\.batch$/;
const pad = (n: number): string => String(n).padStart(20, "0");

/** The batch files of a partition, oldest (lowest offsets) first. */
async function batchFiles(dir: string): Promise<Array<{ name: string; from: number; to: number }>> {
  const names = await readdir(dir).catch((err: NodeJS.ErrnoException) => {
    if (err.code === "ENOENT") return [] as string[];
    throw err;
  });
  return names
    .flatMap((name) => {
      const m = BATCH.exec(name);
      return m ? [{ name, from: Number(m[1]), to: Number(m[2]) }] : [];
    })
    .sort((a, b) => a.from - b.from);
}

/** Keeps one committed batch of `topic[partition]` (offsets `from`..`to`, inclusive), then cuts the partition's copy to `bounds`. */
export async function retainBatch(
  dir: string,
  slice: { topic: string; partition: number; from: number; to: number },
  records: Uint8Array,
  bounds: RetainBounds,
  now = Date.now(),
): Promise<void> {
  const at = partitionDir(dir, slice.topic, slice.partition);
  await mkdir(at, { recursive: true });
  const path = join(at, `${pad(slice.from)}-${pad(slice.to)}.batch`);
  const tmp = `${path}.${randomUUID()}.tmp`;
  await writeFile(tmp, records);
  await rename(tmp, path);
  await pruneRetained(at, bounds, now);
}

/** Removes a partition's oldest batches beyond `bounds`: past `bytes` counted from the newest, or written before `now - ageMs`. */
export async function pruneRetained(at: string, bounds: RetainBounds, now = Date.now()): Promise<void> {
  const files = await batchFiles(at);
  let total = 0;
  let cut = false;
  for (const f of files.reverse()) {
    const info = await stat(join(at, f.name)).catch(() => null);
    if (!info) continue;
    total += info.size;
    cut ||= (bounds.bytes > 0 && total > bounds.bytes) || (bounds.ageMs > 0 && info.mtimeMs < now - bounds.ageMs);
    if (cut) await rm(join(at, f.name), { force: true });
  }
}

/** A partition's retained records in `[from, to)`, and the first offset its copy holds (null: none). */
export async function readRetained(
  dir: string,
  topic: string,
  partition: number,
  from: number,
  to: number,
): Promise<{ first: number | null; records: ConsumedMessage[] }> {
  const at = partitionDir(dir, topic, partition);
  const files = await batchFiles(at);
  const byOffset = new Map<number, ConsumedMessage>();
  for (const f of files) {
    if (f.to < from || f.from >= to) continue;
    const bytes = await readFile(join(at, f.name)).catch(() => null);
    if (!bytes) continue;
    for (const r of decodeBatch(bytes)) {
      if (r.offset < from || r.offset >= to) continue;
      byOffset.set(r.offset, {
        offset: String(r.offset),
        key: r.key === null ? null : Buffer.from(r.key, r.keyBase64 ? "base64" : "utf8"),
        value: r.value === null ? null : Buffer.from(r.value, r.valueBase64 ? "base64" : "utf8"),
        headers: r.headers,
        timestamp: r.timestamp,
      });
    }
  }
  return { first: files[0]?.from ?? null, records: [...byOffset.values()].sort((a, b) => Number(a.offset) - Number(b.offset)) };
}
