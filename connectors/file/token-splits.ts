/**
 * File splits of an LLM pipeline sized by estimated tokens (`core/plan/batch-tokens.ts`): the file
 * is read once and cut at line starts, each split within the byte budget and the tokens of one
 * tokens-per-minute window. The lines of a split are those that start in it, as for byte splits.
 */
import { tokenRanges, type BatchTokens } from "../../core/plan/batch-tokens.js";
import { readLines } from "./line-reader.js";
import { fileSplits, type FileSplit } from "./source.js";

/** Cuts a file into splits at line starts, under `splitBytes` and the sizing's tokens (a longer line alone is a split). */
export async function fileSplitsByTokens(sourceName: string, path: string, splitBytes: number, sizing: BatchTokens): Promise<FileSplit[]> {
  // One split of the whole file checks it as fileSplits does (the error names the source) and gives its size.
  const whole = await fileSplits(sourceName, path, Number.MAX_SAFE_INTEGER);
  if (whole.length === 0) return [];
  const { path: absolute, end: size } = whole[0]!;
  const starts: number[] = [];
  for await (const lines of readLines(absolute, 0, size)) for (const line of lines) starts.push(line.offset);
  const sizes = starts.map((start, i) => (starts[i + 1] ?? size) - start);
  return tokenRanges(sizes, { records: Number.MAX_SAFE_INTEGER, bytes: Math.max(1, splitBytes) }, sizing).map(([from, to]) => ({
    path: absolute,
    start: starts[from]!,
    end: to === starts.length ? size : starts[to]!,
  }));
}
