/**
 * The durable model response cache: one JSON file per request hash under `<data-dir>/llm/cache`,
 * written atomically (temp file + rename), so a retried or re-run activity never pays the model
 * twice, and several worker processes may share it. Each job also keeps the list of request hashes
 * it used (`<data-dir>/llm/records/<pipeline>/<job>.keys`): the record `sage rerun --recorded` replays.
 */
import { createHash, randomUUID } from "node:crypto";
import { appendFile, mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { canonicalJson } from "../../core/plan/hash.js";
import { jobFileName } from "../../core/names.js";

/** A cached answer: the request, the response body the endpoint gave, when. */
export interface CachedResponse {
  kind: "chat" | "embeddings";
  request: unknown;
  response: unknown;
  usage: { promptTokens: number; completionTokens: number };
  at: string;
}

/** Hash of a request: the endpoint kind and the full body (model, messages or input, options). */
export function requestKey(kind: CachedResponse["kind"], body: unknown): string {
  return createHash("sha256")
    .update(`${kind}\n${canonicalJson(body)}`)
    .digest("hex");
}

/** The response cache and the per-job records of one data dir. */
export class ResponseCache {
  private readonly cacheDir: string;
  private readonly recordsDir: string;
  constructor(dataDir: string) {
    this.cacheDir = join(dataDir, "llm", "cache");
    this.recordsDir = join(dataDir, "llm", "records");
  }

  private entryPath(key: string): string {
    return join(this.cacheDir, key.slice(0, 2), `${key}.json`);
  }

  /** The cached answer of `key`, or null. */
  async get(key: string): Promise<CachedResponse | null> {
    try {
      return JSON.parse(await readFile(this.entryPath(key), "utf8")) as CachedResponse;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw err;
    }
  }

  /** Stores an answer (atomically: readers see the whole file or none). */
  async put(key: string, entry: CachedResponse): Promise<void> {
    const path = this.entryPath(key);
    await mkdir(dirname(path), { recursive: true });
    const tmp = `${path}.${randomUUID()}.tmp`;
    await writeFile(tmp, JSON.stringify(entry));
    await rename(tmp, path);
  }

  private recordPath(pipeline: string, jobId: string): string {
    return join(this.recordsDir, pipeline, `${jobFileName(jobId)}.keys`);
  }

  /** Notes that job `jobId` used the answer of `key`. */
  async record(pipeline: string, jobId: string, key: string): Promise<void> {
    const path = this.recordPath(pipeline, jobId);
    await mkdir(dirname(path), { recursive: true });
    await appendFile(path, `${key}\n`);
  }

  /** The request hashes job `jobId` used (empty when it made no model calls here). */
  async recorded(pipeline: string, jobId: string): Promise<Set<string>> {
    const text = await readFile(this.recordPath(pipeline, jobId), "utf8").catch(() => "");
    return new Set(text.split("\n").filter((l) => l !== ""));
  }
}
