/**
 * The what-if memo: what one unit of one stage produced (its result and the messages it would have
 * written), one JSON file per memo key (`stageUnitKey`: stage hash, input hash, parameters) under
 * `<data-dir>/whatif/memo`, written atomically. A stage whose code, configuration and input are
 * unchanged is not run again.
 */
import { randomUUID } from "node:crypto";
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { StageOutput } from "../../core/plan/job.js";

/** A message as the memo keeps it: bytes that are not UTF-8 as base64. */
export interface MemoMessage {
  topic: string;
  key: string | null;
  value: string | null;
  /** Which of key and value are base64 (bytes, not UTF-8 text). */
  base64?: Array<"key" | "value">;
  headers?: Record<string, string>;
}

/** One unit of one stage, as it ran. */
export interface MemoEntry {
  output: StageOutput;
  messages: MemoMessage[];
}

/** The memo of one data dir. */
export class StageMemo {
  private readonly dir: string;
  constructor(dataDir: string) {
    this.dir = join(dataDir, "whatif", "memo");
  }

  private path(key: string): string {
    return join(this.dir, key.slice(0, 2), `${key}.json`);
  }

  /** The entry of `key`, or null. */
  async get(key: string): Promise<MemoEntry | null> {
    try {
      return JSON.parse(await readFile(this.path(key), "utf8")) as MemoEntry;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw err;
    }
  }

  /** Stores an entry (readers see the whole file or none). */
  async put(key: string, entry: MemoEntry): Promise<void> {
    const path = this.path(key);
    await mkdir(dirname(path), { recursive: true });
    const tmp = `${path}.${randomUUID()}.tmp`;
    await writeFile(tmp, JSON.stringify(entry));
    await rename(tmp, path);
  }
}
