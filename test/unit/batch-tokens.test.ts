/** Micro-batches sized by estimated tokens: which pipelines get it, the shim's cut, the bounded file and collection splits. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { definePipeline, FileSink, FileSource } from "sage-temporal";
import { batchTokensOf, recordTokens, tokenRanges, type BatchTokens } from "../../core/plan/batch-tokens.js";
import { parseConfig } from "../../core/config/schema.js";
import { cutBatches } from "../../streaming/shim/batching.js";
import type { ConsumedMessage } from "../../connectors/kafka/client.js";
import { fileSplitsByTokens } from "../../connectors/file/token-splits.js";
import { readLines } from "../../connectors/file/line-reader.js";

const llmPipeline = definePipeline("tokens-llm", (env) =>
  env
    .fromSource(FileSource.jsonl<{ text: string }>("in.jsonl"), { name: "in" })
    .embed({ text: (r) => r.text, name: "embed" })
    .prompt("Q: {{text}}", { name: "prompt" })
    .generate({ maxTokens: 8, name: "generate" })
    .sink(FileSink.jsonl("out.jsonl"), { name: "out" }),
);
const plainPipeline = definePipeline("tokens-plain", (env) =>
  env
    .fromSource(FileSource.jsonl<{ text: string }>("in.jsonl"), { name: "in" })
    .map((r) => r.text.toUpperCase(), { name: "upper" })
    .sink(FileSink.jsonl("out.jsonl"), { name: "out" }),
);

test("token sizing applies to a pipeline with model calls under a tokens-per-minute limit: the smallest limit, the calls and answer tokens", () => {
  const llm = llmPipeline.compile().functions;
  assert.equal(batchTokensOf(llm, parseConfig({}).llm), null, "no limit set");
  assert.equal(batchTokensOf(plainPipeline.compile().functions, parseConfig({ llm: { "tokens-per-minute": 100 } }).llm), null, "no model call");
  assert.deepEqual(batchTokensOf(llm, parseConfig({ llm: { budget: { job: { "tokens-per-minute": 1000 } } } }).llm), {
    maxTokens: 1000,
    calls: 2,
    answerTokens: 8,
  });
  const perModel = parseConfig({
    llm: { "tokens-per-minute": 900, limits: { "smollm2-135m-instruct": { "tokens-per-minute": 300 } }, budget: { pipeline: { "tokens-per-minute": 1000 } } },
  }).llm;
  assert.equal(batchTokensOf(llm, perModel)?.maxTokens, 300, "the chat model's own limit");
  const renamed = parseConfig({
    llm: { models: { generate: "other" }, limits: { "smollm2-135m-instruct": { "tokens-per-minute": 300 } }, "tokens-per-minute": 900 },
  }).llm;
  assert.equal(batchTokensOf(llm, renamed)?.maxTokens, 900, "llm.models moves the generate operator to a model under the global limit");
});

test("a record's estimate: its bytes at 4 characters per token once per model call, plus the answer tokens", () => {
  const sizing: BatchTokens = { maxTokens: 100, calls: 2, answerTokens: 8 };
  assert.equal(recordTokens(sizing, 40), 2 * 10 + 8);
  assert.equal(recordTokens(sizing, 41), 2 * 11 + 8);
  assert.equal(recordTokens(sizing, 0), 2 * 1 + 8);
});

test("tokenRanges: consecutive ranges under the record, byte and token caps; a record over a cap alone", () => {
  const sizing: BatchTokens = { maxTokens: 30, calls: 1, answerTokens: 0 };
  // 40 bytes: 10 tokens each, 3 per range.
  assert.deepEqual(tokenRanges([40, 40, 40, 40, 40, 40, 40], { records: 100, bytes: 1e9 }, sizing), [
    [0, 3],
    [3, 6],
    [6, 7],
  ]);
  assert.deepEqual(tokenRanges([40, 400, 40], { records: 100, bytes: 1e9 }, sizing), [
    [0, 1],
    [1, 2],
    [2, 3],
  ]);
  assert.deepEqual(tokenRanges([4, 4, 4, 4, 4], { records: 2, bytes: 1e9 }, sizing), [
    [0, 2],
    [2, 4],
    [4, 5],
  ]);
  assert.deepEqual(tokenRanges([], { records: 2, bytes: 1e9 }, sizing), []);
});

const message = (offset: number, value: string): ConsumedMessage => ({
  offset: String(offset),
  key: null,
  value: Buffer.from(value),
  headers: {},
  timestamp: "0",
});

test("the shim cuts by tokens only when the pipeline has token sizing; without it the cut is as before", () => {
  const batch = { topic: "t", partition: 0, messages: Array.from({ length: 10 }, (_, i) => message(i, "x".repeat(40))) };
  const counts = (limits: Parameters<typeof cutBatches>[1]) => cutBatches(batch, limits).map((b) => b.meta.count);
  assert.deepEqual(counts({ maxBatchRecords: 4, maxBatchBytes: 1e9 }), [4, 4, 2]);
  assert.deepEqual(counts({ maxBatchRecords: 4, maxBatchBytes: 1e9, tokens: null }), [4, 4, 2]);
  // 10 + 8 tokens a record: 3 fit 60.
  assert.deepEqual(counts({ maxBatchRecords: 4, maxBatchBytes: 1e9, tokens: { maxTokens: 60, calls: 1, answerTokens: 8 } }), [3, 3, 3, 1]);
  assert.deepEqual(counts({ maxBatchRecords: 2, maxBatchBytes: 1e9, tokens: { maxTokens: 1000, calls: 1, answerTokens: 8 } }), [2, 2, 2, 2, 2]);
});

test("file splits by tokens start at line starts, fit the window, and read every line once", async () => {
  const dir = await mkdtemp(join(tmpdir(), "sage-tokens-"));
  const path = join(dir, "in.jsonl");
  const lines = Array.from({ length: 25 }, (_, i) => JSON.stringify({ id: i, text: "q".repeat(i % 7 === 0 ? 200 : 20 + i) }));
  await writeFile(path, lines.join("\n")); // no newline after the last line
  const sizing: BatchTokens = { maxTokens: 60, calls: 1, answerTokens: 8 };
  const splits = await fileSplitsByTokens("in", path, 1 << 20, sizing);
  assert.ok(splits.length > 5, `${splits.length} splits`);
  const read: string[] = [];
  let at = 0;
  for (const split of splits) {
    assert.equal(split.start, at, "contiguous");
    at = split.end;
    const got: string[] = [];
    for await (const chunk of readLines(split.path, split.start, split.end)) got.push(...chunk.map((l) => l.text));
    const tokens = got.reduce((n, l) => n + recordTokens(sizing, Buffer.byteLength(l) + 1), 0);
    assert.ok(got.length === 1 || tokens <= sizing.maxTokens, `split [${split.start}, ${split.end}): ${tokens} tokens in ${got.length} lines`);
    read.push(...got);
  }
  assert.deepEqual(read, lines);
  const bytes = await fileSplitsByTokens("in", path, 100, { maxTokens: 1e9, calls: 1, answerTokens: 0 });
  assert.ok(bytes.length > splits.length / 2);
  for (const s of bytes) {
    let n = 0;
    for await (const chunk of readLines(s.path, s.start, s.end)) n += chunk.length;
    assert.ok(s.end - s.start <= 100 || n === 1, `the byte budget holds, at line starts: [${s.start}, ${s.end}) has ${n} lines`);
  }
  assert.deepEqual(await fileSplitsByTokens("in", join(dir, "empty"), 100, sizing).catch((e: Error) => e.message.includes("no such file")), true);
});
