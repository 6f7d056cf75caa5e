/** Deterministic text corpora for benchmarks (a fixed vocabulary, a seeded generator). */
import { createWriteStream } from "node:fs";
import { mkdir, stat } from "node:fs/promises";
import { dirname } from "node:path";
import { once } from "node:events";

const VOCABULARY = (
  "the quick brown fox jumps over lazy dog temporal workflow activity durable stream pipeline operator fusion " +
  "record batch split sink source window state checkpoint retry signal history worker queue kafka offset " +
  "embedding retrieval generation router agent query answer context model token latency throughput a an of to in is"
).split(" ");

/** Writes `lines` lines of 6-14 words each to `path` unless a file of that name already exists. Returns its size. */
export async function ensureCorpus(path: string, lines: number): Promise<number> {
  const existing = await stat(path).catch(() => null);
  if (existing) return existing.size;
  await mkdir(dirname(path), { recursive: true });
  const out = createWriteStream(path);
  let seed = 42;
  const next = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff);
  let buf: string[] = [];
  for (let i = 0; i < lines; i++) {
    const n = 6 + (next() % 9);
    const words: string[] = [];
    for (let j = 0; j < n; j++) words.push(VOCABULARY[next() % VOCABULARY.length]!);
    buf.push(words.join(next() % 7 === 0 ? ", " : " "));
    if (buf.length === 10_000) {
      if (!out.write(buf.join("\n") + "\n")) await once(out, "drain");
      buf = [];
    }
  }
  out.end(buf.length ? buf.join("\n") + "\n" : "");
  await once(out, "finish");
  return (await stat(path)).size;
}
