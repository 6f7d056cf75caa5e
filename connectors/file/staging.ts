/**
 * Exactly-once file output: each shard (split or batch) is written to a staging file and renamed
 * into place when complete; at commit the shards are concatenated in shard order into a temporary
 * file beside the target, which is renamed over it. Retried shards overwrite themselves, so a
 * worker crash never duplicates or loses a line.
 */
import { createHash } from "node:crypto";
import { createWriteStream, type WriteStream } from "node:fs";
import { mkdir, readdir, rename, rm, writeFile, readFile, open, type FileHandle } from "node:fs/promises";
import { dirname, join } from "node:path";
import { once } from "node:events";
import { jobFileName } from "../../core/names.js";

/** Directory holding the staged shards of one job. */
export function jobStagingDir(dataDir: string, pipeline: string, jobId: string): string {
  return join(dataDir, "staging", pipeline, jobFileName(jobId));
}

/** Longest shard key used as a file name as it is (a name may have 255 bytes; keys grow per stage hop and loop round). */
const MAX_SHARD_NAME = 160;

/**
 * File name of a shard. A longer key keeps its first characters, then `~~`, its length and a hash:
 * still unique and stable, and it sorts after the shorter keys it extends (`~` is the largest
 * character of a key), so shards of later loop rounds stay after earlier ones.
 */
export function shardFileName(shard: string): string {
  if (shard.length <= MAX_SHARD_NAME) return `${shard}.jsonl`;
  const hash = createHash("sha256").update(shard).digest("hex").slice(0, 16);
  return `${shard.slice(0, MAX_SHARD_NAME - 32)}~~${String(shard.length).padStart(8, "0")}-${hash}.jsonl`;
}

/** Writes one shard of one output: lines are buffered, the file appears only at `finish`. */
export class ShardWriter {
  private stream: WriteStream | null = null;
  private pending: string[] = [];
  private pendingBytes = 0;
  private readonly tmpPath: string;

  constructor(private readonly finalPath: string) {
    this.tmpPath = `${finalPath}.tmp`;
  }

  /** Appends one line (without its newline); returns a promise only when the buffer was flushed. */
  writeLine(line: string): void | Promise<void> {
    this.pending.push(line);
    this.pendingBytes += line.length + 1;
    if (this.pendingBytes >= 256 * 1024) return this.flush();
  }

  private async flush(): Promise<void> {
    if (this.pending.length === 0) return;
    if (!this.stream) {
      await mkdir(dirname(this.tmpPath), { recursive: true });
      this.stream = createWriteStream(this.tmpPath, { flags: "w" });
    }
    const text = this.pending.join("\n") + "\n";
    this.pending = [];
    this.pendingBytes = 0;
    if (!this.stream.write(text)) await once(this.stream, "drain");
  }

  /** Makes the shard visible (even when empty, so a retry that writes nothing overwrites the old one). */
  async finish(): Promise<void> {
    await this.flush();
    if (this.stream) {
      const s = this.stream;
      await new Promise<void>((res, rej) => s.end((err?: Error | null) => (err ? rej(err) : res())));
    } else {
      await mkdir(dirname(this.tmpPath), { recursive: true });
      await writeFile(this.tmpPath, "");
    }
    await rename(this.tmpPath, this.finalPath);
  }

  /** Drops the temporary file of an unfinished shard. */
  async discard(): Promise<void> {
    this.stream?.destroy();
    await rm(this.tmpPath, { force: true });
  }
}

/**
 * Writes all of `data` at the file's position. One `write` may write less than asked (a disk that
 * fills up mid-write) and say so only in its count; the next call then fails with ENOSPC. A single
 * unchecked `write` of a commit's last shard would publish a truncated file as committed
 * (`bench/chaos.ts`, fault disk-full, found it).
 */
export async function writeFully(out: FileHandle, data: Uint8Array): Promise<void> {
  for (let at = 0; at < data.length;) {
    const { bytesWritten } = await out.write(data, at, data.length - at);
    at += bytesWritten;
  }
}

/** Lines (newlines) in `data`. */
function linesIn(data: Buffer): number {
  let n = 0;
  for (let i = data.indexOf(0x0a); i !== -1; i = data.indexOf(0x0a, i + 1)) n++;
  return n;
}

/**
 * Concatenates the finished shards in `dir` (sorted by name) into `target`, atomically, after what
 * `prefix` writes first (an append keeps the target's earlier bytes that way). Returns the shards
 * in that order with their line counts (what a line of the target is found by in its lineage).
 */
export async function publishShards(
  dir: string,
  target: string,
  tmpSuffix: string,
  prefix?: (out: FileHandle) => Promise<void>,
): Promise<Array<{ name: string; lines: number }>> {
  const names = (await readdir(dir).catch(() => [] as string[])).filter((n) => n.endsWith(".jsonl")).sort();
  await mkdir(dirname(target), { recursive: true });
  const tmp = `${target}.${tmpSuffix}.tmp`;
  const published: Array<{ name: string; lines: number }> = [];
  try {
    const out = await open(tmp, "w");
    try {
      if (prefix) await prefix(out);
      for (const name of names) {
        const data = await readFile(join(dir, name));
        if (data.length > 0) await writeFully(out, data);
        published.push({ name, lines: linesIn(data) });
      }
      await out.sync();
    } finally {
      await out.close();
    }
    await rename(tmp, target);
    return published;
  } catch (err) {
    // A failed publish leaves nothing beside the target (a target that is a directory, a full disk:
    // the partial file would keep the space the retry needs).
    await rm(tmp, { force: true });
    throw err;
  }
}
