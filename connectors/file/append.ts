/**
 * Exactly-once append of staged shards to a file already published (a redrive job adds its output
 * to the job's): the target's size before the first attempt is recorded in the staging directory,
 * and every attempt writes that prefix plus the shards to a temporary file renamed over the target,
 * so a commit retried after its rename writes the same bytes again instead of appending twice.
 */
import { mkdir, open, readFile, rename, stat, writeFile, type FileHandle } from "node:fs/promises";
import { dirname } from "node:path";
import { publishShards, writeFully } from "./staging.js";

/** The target's size recorded before the first attempt (or now, on the first). */
async function baseSize(record: string, target: string): Promise<number> {
  const earlier = await readFile(record, "utf8").catch(() => null);
  if (earlier !== null) return Number(earlier);
  const size = (await stat(target).catch(() => null))?.size ?? 0;
  await writeFile(`${record}.tmp`, String(size));
  await rename(`${record}.tmp`, record);
  return size;
}

/** Copies the first `bytes` bytes of `path` to `out`. */
async function copyPrefix(path: string, bytes: number, out: FileHandle): Promise<void> {
  const src = await open(path, "r");
  try {
    const chunk = Buffer.allocUnsafe(1 << 20);
    for (let at = 0; at < bytes;) {
      const { bytesRead } = await src.read(chunk, 0, Math.min(chunk.length, bytes - at), at);
      if (bytesRead === 0) throw new Error(`${path} is shorter than the ${bytes} bytes it had before this append`);
      await writeFully(out, chunk.subarray(0, bytesRead));
      at += bytesRead;
    }
  } finally {
    await src.close();
  }
}

/** Appends the finished shards in `dir` (sorted by name) to `target`, atomically and once across retries. */
export async function appendShards(dir: string, target: string, tmpSuffix: string): Promise<void> {
  await mkdir(dirname(target), { recursive: true });
  await mkdir(dirname(dir), { recursive: true });
  const base = await baseSize(`${dir}.append-base`, target);
  await publishShards(dir, target, tmpSuffix, base > 0 ? (out) => copyPrefix(target, base, out) : undefined);
}
