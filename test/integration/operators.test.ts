/**
 * Every operator kind (map, flatMap, filter, process with a side output, sinks, sources) in lambda,
 * object and class form, run for real: fused, unfused and with a parallelism cut, the output must be
 * exactly the reference and the counts must add up.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readdirSync, writeFileSync } from "node:fs";
import { defaultPayloadConverter } from "@temporalio/common";
import { SageClient } from "../../client/sage-client.js";
import type { StageInput } from "../../core/plan/job.js";
import { join } from "node:path";
import { runJob, testConfig, readJsonl } from "../support/harness.js";
import { SHORT, collectionPipeline, printPipeline, seen, userSourcePipeline, wordsCutPipeline, wordsPipeline, type Word } from "../fixtures/operators.js";

const VOCABULARY = ["The", "quick", "brown", "fox", "jumps", "over", "the", "lazy", "dog", "Quartz", "a", "sphinx", "of", "black", "judge", "my", "vow"];

/** A deterministic input of `n` lines `<i>\t<words>` (about 40 bytes each). */
function wordsInput(n: number): string {
  const lines: string[] = [];
  let seed = 7;
  for (let i = 0; i < n; i++) {
    const words: string[] = [];
    for (let k = 0; k < 1 + (i % 7); k++) {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      words.push(VOCABULARY[seed % VOCABULARY.length]!);
    }
    lines.push(`${i}\t${words.join(" ")}`);
  }
  return lines.join("\n") + "\n";
}

/** The chain of `wordsPipeline`, computed directly. */
function reference(input: string) {
  const lines = input.trimEnd().split("\n");
  const words: Word[] = lines.flatMap((l) => {
    const [n, text = ""] = l.split("\t");
    return text
      .split(" ")
      .filter(Boolean)
      .map((word) => ({ word, line: Number(n) }));
  });
  const lower = words.map((w) => ({ ...w, word: w.word.toLowerCase() }));
  const kept = lower.filter((w) => w.word !== "the");
  const twice = kept.flatMap((w) => (w.word.startsWith("q") ? [w, { ...w, word: `${w.word}!` }] : [w]));
  return {
    lines: lines.length,
    words: words.length,
    kept: kept.length,
    twice: twice.length,
    long: twice.filter((w) => w.word.length >= SHORT).map((w) => ({ ...w, length: w.word.length })),
    short: twice.filter((w) => w.word.length < SHORT),
  };
}

const variants = [
  { label: "fused", pipeline: wordsPipeline, overrides: {}, stages: 1 },
  { label: "unfused", pipeline: wordsPipeline, overrides: { "execution.fusion": false }, stages: 8 },
  { label: "parallelism-cut", pipeline: wordsCutPipeline, overrides: {}, stages: 2 },
];

for (const v of variants) {
  test(`map, flatMap, filter, process and side outputs give exactly the reference output (${v.label})`, async () => {
    const config = testConfig(`ops-${v.label}`, { "execution.split-bytes": "2kb", ...v.overrides });
    const input = join(config.dir, "in.txt");
    const text = wordsInput(400);
    writeFileSync(input, text);
    const want = reference(text);
    const params = { input, long: join(config.dir, "long.jsonl"), short: join(config.dir, "short.jsonl") };

    const { job, result } = await runJob(v.pipeline, config, params);

    assert.equal(job.plan?.stages.length, v.stages, `stages: ${job.plan?.stages.map((s) => s.name).join(" | ")}`);
    assert.ok(result.splitsTotal > 3, `expected several splits, got ${result.splitsTotal}`);
    assert.equal(result.splitsDone, result.splitsTotal);
    assert.equal(result.phase, "done");
    assert.deepEqual(readJsonl(params.long), want.long);
    assert.deepEqual(readJsonl(params.short), want.short);
    assert.deepEqual(result.outputs, { long: params.long, short: params.short });
    const c = result.counts;
    assert.deepEqual(c.lines, { in: want.lines, out: want.lines, dead: 0 });
    assert.deepEqual(c.split, { in: want.lines, out: want.words, dead: 0 });
    assert.deepEqual(c.lower, { in: want.words, out: want.words, dead: 0 });
    assert.deepEqual(c["no-the"], { in: want.words, out: want.kept, dead: 0 });
    assert.deepEqual(c.twice, { in: want.kept, out: want.twice, dead: 0 });
    assert.deepEqual(c.route, { in: want.twice, out: want.twice, dead: 0 });
    assert.deepEqual(c.long, { in: want.long.length, out: want.long.length, dead: 0 });
    assert.deepEqual(c.short, { in: want.short.length, out: want.short.length, dead: 0 });
    assert.equal(result.deadLetters, 0);
    assert.equal(result.deadLetterPath, null);
    if (v.stages > 1) await assertRecordsStayedOutOfHistory(config, job.workflowId);
  });
}

/** Records between the stages of a bounded job travel by edge file: history holds references only, and commit removed the files. */
async function assertRecordsStayedOutOfHistory(config: ReturnType<typeof testConfig>, workflowId: string): Promise<void> {
  const client = await SageClient.connect({ config });
  try {
    const history = await client.temporal.workflow.getHandle(workflowId).fetchHistory();
    const inputs = (history.events ?? [])
      .map((e) => e.activityTaskScheduledEventAttributes)
      .filter((a) => a?.activityType?.name?.startsWith("stage:"))
      .map((a) => defaultPayloadConverter.fromPayload<StageInput>(a!.input!.payloads![0]!));
    const downstream = inputs.filter((i) => !i.split);
    assert.ok(downstream.length > 0, "some stage activities ran on records from another stage");
    assert.deepEqual(
      downstream.filter((i) => i.batch !== undefined || !i.batchRef),
      [],
      "every downstream stage got its records by reference, none inline",
    );
  } finally {
    await client.close();
  }
  const staging = join(config["data-dir"], "staging");
  const leftovers = existsSync(staging) ? readdirSync(staging, { recursive: true }).filter((f) => String(f).includes("_edges")) : [];
  assert.deepEqual(leftovers, [], "the edge files are gone after commit");
}

test("a user source is split by its own splits() and every record reaches the user sink once, with finish() once per shard", async () => {
  seen.splitsCalls = 0;
  seen.reads.length = 0;
  seen.invoked.length = 0;
  seen.finished.length = 0;
  seen.sourceParams.length = 0;
  const config = testConfig("ops-user-source");
  const { job, result } = await runJob(userSourcePipeline, config, { count: "95", per: "10" }, "numbers-1");

  assert.equal(seen.splitsCalls, 1);
  assert.deepEqual(seen.sourceParams, [{ count: "95", per: "10" }]);
  assert.equal(result.splitsTotal, 10);
  const reads = seen.reads.map((s) => (s as { from: number }).from).sort((a, b) => a - b);
  assert.deepEqual(reads, [0, 10, 20, 30, 40, 50, 60, 70, 80, 90]);
  const values = seen.invoked.map((x) => x.value).sort((a, b) => a - b);
  assert.deepEqual(
    values,
    Array.from({ length: 95 }, (_, i) => i * 10),
  );
  assert.ok(seen.invoked.every((x) => x.operatorId === "collect" && x.jobId === "numbers-1"));
  // One shard per split: finish() ran once for each, and every record's shard is one of them.
  assert.equal(new Set(seen.finished).size, 10);
  assert.equal(seen.finished.length, 10);
  for (const x of seen.invoked) assert.ok(seen.finished.includes(x.shard), `shard ${x.shard} was never finished`);
  // Split i holds the records [10i, 10i+10): its shard is the same for all of them.
  const shardOfSplit = new Map<number, Set<string>>();
  for (const x of seen.invoked) {
    const split = Math.floor(x.value / 100);
    shardOfSplit.set(split, (shardOfSplit.get(split) ?? new Set()).add(x.shard));
  }
  assert.ok([...shardOfSplit.values()].every((s) => s.size === 1));
  assert.deepEqual(result.counts.numbers, { in: 95, out: 95, dead: 0 });
  assert.deepEqual(result.counts.collect, { in: 95, out: 95, dead: 0 });
  assert.equal(job.workflowId, "sage/ops-user-source/numbers-1");
});

test("fromCollection feeds objects in order and the record context names the operator", async () => {
  const config = testConfig("ops-collection");
  const output = join(config.dir, "out.jsonl");
  const { result } = await runJob(collectionPipeline, config, { output });
  const want = Array.from({ length: 25 }, (_, i) => i)
    .filter((i) => i % 2 === 0)
    .map((id) => ({ id, even: true, op: "stamp", attempt: 1 }));
  assert.deepEqual(readJsonl(output), want);
  assert.deepEqual(result.counts.items, { in: 25, out: 25, dead: 0 });
  assert.deepEqual(result.counts.even, { in: 25, out: 13, dead: 0 });
});

test("print() writes each record as a JSON line with its prefix on the worker's stdout", async () => {
  const config = testConfig("ops-print");
  const printed: string[] = [];
  const write = process.stdout.write.bind(process.stdout);
  // The worker runs in this process: collect what it prints, and pass everything on.
  process.stdout.write = (chunk: string | Uint8Array, ...rest: never[]) => {
    printed.push(String(chunk));
    return write(chunk, ...rest);
  };
  let result;
  try {
    ({ result } = await runJob(printPipeline, config));
  } finally {
    process.stdout.write = write;
  }
  // One write per record (the test runner's own protocol shares this stream).
  const rows = printed.filter((c) => c.startsWith("row ")).map((c) => c.trimEnd());
  assert.deepEqual(rows.sort(), ['row {"a":1}', 'row {"a":2,"b":"two"}', 'row {"a":3}']);
  assert.deepEqual(result.counts.show, { in: 3, out: 3, dead: 0 });
  assert.deepEqual(result.outputs, {});
});
