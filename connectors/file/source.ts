/** The bounded file source: splits by byte range, reads lines or JSON Lines. */
import { stat } from "node:fs/promises";
import { resolve } from "node:path";
import { SourceError } from "../../core/errors.js";
import { readLines } from "./line-reader.js";

/** A split of a file: the byte range `[start, end)` of an absolute path. */
export interface FileSplit {
  path: string;
  start: number;
  end: number;
}

/** Cuts a file into splits of about `splitBytes`; the error names the source and the file. */
export async function fileSplits(sourceName: string, path: string, splitBytes: number): Promise<FileSplit[]> {
  const absolute = resolve(path);
  let size: number;
  try {
    const info = await stat(absolute);
    if (!info.isFile()) throw new SourceError(`source "${sourceName}": input "${absolute}" is not a regular file`);
    size = info.size;
  } catch (err) {
    if (err instanceof SourceError) throw err;
    const code = (err as NodeJS.ErrnoException).code ?? "error";
    const why = code === "ENOENT" ? "no such file" : code === "EACCES" ? "permission denied" : String(err);
    throw new SourceError(`source "${sourceName}": cannot read input file "${absolute}": ${why} (${code})`, { cause: err });
  }
  const step = Math.max(1, splitBytes);
  const splits: FileSplit[] = [];
  for (let start = 0; start < size; start += step) splits.push({ path: absolute, start, end: Math.min(size, start + step) });
  return splits;
}

/** A record read from a file (with its line's first byte and length), or the reason a line could not be decoded. */
export type FileRecord =
  { ok: true; value: unknown; offset: number; bytes: number } | { ok: false; raw: string; reason: string; offset: number; bytes: number };

/** Reads one split as text lines or JSON Lines, a chunk of records at a time (undecodable lines come back as failures). */
export async function* readFileSplit(split: FileSplit, format: "lines" | "jsonl"): AsyncGenerator<FileRecord[]> {
  try {
    for await (const lines of readLines(split.path, split.start, split.end)) {
      if (format === "lines") {
        yield lines.map((line): FileRecord => ({ ok: true, value: line.text, offset: line.offset, bytes: line.bytes }));
        continue;
      }
      const records: FileRecord[] = [];
      for (const line of lines) {
        if (line.text.trim() === "") continue;
        try {
          records.push({ ok: true, value: JSON.parse(line.text) as unknown, offset: line.offset, bytes: line.bytes });
        } catch (err) {
          records.push({
            ok: false,
            raw: line.text,
            reason: `invalid JSON at ${split.path} byte ${line.offset}: ${(err as Error).message}`,
            offset: line.offset,
            bytes: line.bytes,
          });
        }
      }
      yield records;
    }
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new SourceError(`cannot read "${split.path}" [${split.start}, ${split.end}): ${String(err)}`, { cause: err, retriable: code !== "ENOENT" });
  }
}
