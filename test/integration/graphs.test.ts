/**
 * Pipelines as graphs, run for real: broadcast, a union of two sources, several sinks, a route with
 * and without `otherwise`, connected streams (a class co-map whose open/close are counted, a
 * co-flat-map), and feedback loops that converge or hit their bound. Each shape runs fused and, where
 * it changes the plan, unfused or with a parallelism cut; the output must be the reference computed
 * here in plain TypeScript, each (batch, edge) delivered once (on a broadcast edge, once to each
 * instance of the reader), each branch in order.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { StageCounts } from "../../core/plan/job.js";
import { SageClient } from "../../client/sage-client.js";
import {
  NUMBERS,
  SEEDS,
  WORDS,
  broadcastPipeline,
  coFlatMapPipeline,
  coMapJournal,
  coMapPipeline,
  halvingPipeline,
  mod3Label,
  multiSinkPipeline,
  routePipeline,
  twoLoopsPipeline,
  unionPipeline,
  type Halving,
  type Message,
  type Routed,
  type Shape,
} from "../fixtures/graphs.js";
import { readJsonl, runJob, startWorker, testConfig } from "../support/harness.js";

const N = NUMBERS.length;

/** The variants a shape runs in: fused, unfused, and fused with a parallelism cut downstream. */
const VARIANTS: Array<{ shape: Shape; overrides: Record<string, unknown> }> = [
  { shape: { variant: "fused" }, overrides: {} },
  { shape: { variant: "unfused" }, overrides: { "execution.fusion": false } },
  { shape: { variant: "cut", downstreamParallelism: 3 }, overrides: {} },
];

/** A dead letter as written at commit. */
interface DeadLetter {
  operator: string;
  operatorName: string;
  attempts: number;
  error: { name: string; message: string; code?: string };
  record: unknown;
}

/** Sorted copies of JSON values: compares two outputs as multisets. */
function sortedJson(values: readonly unknown[]): string[] {
  return values.map((v) => JSON.stringify(v)).sort();
}

/** `in` of each named operator. */
function ins(counts: StageCounts, ...ops: string[]): Record<string, number | undefined> {
  return Object.fromEntries(ops.map((op) => [op, counts[op]?.in]));
}

/**
 * Asserts that `got` holds `want` exactly `copies` times, each copy in input order: the k-th
 * occurrences of the (distinct) records, in output order, are `want` in order, for every k.
 */
function assertCopiesInOrder(got: readonly unknown[], want: readonly unknown[], copies: number, what: string): void {
  const seen = new Map<string, number>();
  const byCopy: string[][] = Array.from({ length: copies }, () => []);
  for (const value of got) {
    const key = JSON.stringify(value);
    const k = seen.get(key) ?? 0;
    seen.set(key, k + 1);
    assert.ok(k < copies, `${what}: ${key} arrived more than ${copies} times`);
    byCopy[k]!.push(key);
  }
  const wanted = want.map((v) => JSON.stringify(v));
  byCopy.forEach((keys, k) => assert.deepEqual(keys, wanted, `${what}: copy ${k + 1} of ${copies}`));
}

for (const { shape, overrides } of VARIANTS) {
  test(`broadcast: each parallel instance of every reader gets every record (${shape.variant})`, async () => {
    const config = testConfig(`graphs-broadcast-${shape.variant}`, overrides);
    const all = join(config.dir, "all.jsonl");
    const tenfold = join(config.dir, "tenfold.jsonl");
    const { job, result } = await runJob(broadcastPipeline(shape), config, { all, tenfold });
    // `all` runs at the job's parallelism, `tens -> tenfold` at the shape's: one copy per instance.
    const allCopies = config.execution.parallelism;
    const tensCopies = shape.downstreamParallelism ?? allCopies;
    assert.ok(allCopies > 1, "the job's parallelism must be above 1 for a broadcast to be seen");
    // Shards are published in name order, one per instance and batch: each copy keeps the input order.
    assertCopiesInOrder(
      readJsonl(all),
      NUMBERS.map((n) => ({ n, sq: n * n })),
      allCopies,
      "all",
    );
    assertCopiesInOrder(
      readJsonl(tenfold),
      NUMBERS.map((n) => ({ n, tens: n * n * 10 })),
      tensCopies,
      "tenfold",
    );
    assert.deepEqual(ins(result.counts, "square", "fan", "all", "tens", "tenfold"), {
      square: N,
      fan: N,
      all: N * allCopies,
      tens: N * tensCopies,
      tenfold: N * tensCopies,
    });
    assert.equal(result.deadLetters, 0);
    const fanStage = job.plan!.stages.find((s) => s.operators.includes("fan"))!;
    assert.ok(!fanStage.operators.includes("all") && !fanStage.operators.includes("tens"), `stages: ${job.plan!.stages.map((s) => s.name).join(" | ")}`);
    const fromFan = job.plan!.edges.filter((e) => e.fromOperator === "fan");
    assert.deepEqual(
      fromFan.map((e) => [e.toOperator, e.broadcast]),
      [
        ["all", true],
        ["tens", true],
      ],
    );
  });
}

/** A JSON Lines input of `n` messages. */
function messagesInput(path: string, n: number): Message[] {
  const messages = Array.from({ length: n }, (_, i) => ({ seq: i, text: `message ${i} ${"x".repeat(i % 17)}` }));
  writeFileSync(path, messages.map((m) => `${JSON.stringify(m)}\n`).join(""));
  return messages;
}

for (const { shape, overrides } of VARIANTS) {
  test(`union of two sources in one job: every record once, each source in its own order (${shape.variant})`, async () => {
    const config = testConfig(`graphs-union-${shape.variant}`, { "execution.split-bytes": "2kb", ...overrides });
    const input = join(config.dir, "messages.jsonl");
    const output = join(config.dir, "out.jsonl");
    const messages = messagesInput(input, 900);
    const { job, result } = await runJob(unionPipeline(shape), config, { input, output });

    type Out = { from: string; seq: number; text: string; length: number };
    const want: Out[] = [
      ...messages.map((m) => ({ from: "messages", seq: m.seq, text: m.text, length: m.text.length })),
      ...NUMBERS.map((n) => ({ from: "counters", seq: n, text: `#${n}`, length: `#${n}`.length })),
    ];
    const got = readJsonl<Out>(output);
    assert.deepEqual(sortedJson(got), sortedJson(want));
    for (const from of ["messages", "counters"]) {
      assert.deepEqual(
        got.filter((r) => r.from === from),
        want.filter((r) => r.from === from),
        `records of ${from} out of order`,
      );
    }
    assert.deepEqual(ins(result.counts, "messages", "counters", "both", "out"), { messages: 900, counters: N, both: 900 + N, out: 900 + N });
    assert.ok(result.splitsTotal > 2, `expected several splits per source, got ${result.splitsTotal}`);
    assert.equal(job.plan!.stages.filter((s) => s.source).length, 2);
    const union = job.plan!.stages.find((s) => s.operators.includes("both"))!;
    assert.equal(union.source, false);
    if (shape.variant === "fused") {
      assert.deepEqual(union.operators, ["both", "measure", "out"]);
      assert.match(job.plan!.cuts.find((c) => c.to === "both")!.reason, /joins inputs from different stages/);
    }
  });
}

for (const { shape, overrides } of VARIANTS) {
  test(`three sinks in one job each get exactly their records (${shape.variant})`, async () => {
    const config = testConfig(`graphs-sinks-${shape.variant}`, overrides);
    const paths = { everything: join(config.dir, "everything.jsonl"), evens: join(config.dir, "evens.jsonl"), odds: join(config.dir, "odds.jsonl") };
    const { result } = await runJob(multiSinkPipeline(shape), config, paths);
    const labelled = NUMBERS.map((n) => ({ n, even: n % 2 === 0 }));
    assert.deepEqual(readJsonl(paths.everything), labelled);
    assert.deepEqual(
      readJsonl(paths.evens),
      labelled.filter((r) => r.even),
    );
    assert.deepEqual(
      readJsonl(paths.odds),
      NUMBERS.filter((n) => n % 2 === 1).map((n) => ({ odd: n })),
    );
    assert.deepEqual(Object.keys(result.outputs).sort(), ["evens", "everything", "odds"]);
    assert.equal(result.outputs.odds, paths.odds);
    assert.deepEqual(ins(result.counts, "everything", "evens", "odds"), { everything: N, evens: N / 2, odds: N / 2 });
  });
}

/** What the route pipelines should write, in plain TypeScript. */
function routeReference(otherwise: boolean): Routed[] {
  return NUMBERS.flatMap((n): Routed[] => {
    const label = mod3Label(n);
    if (label === "zero") return [{ n, branch: "zero" }];
    if (label === "one") return n % 2 === 0 ? [{ n, branch: "one" }] : [];
    return otherwise ? [{ n, branch: "other" }] : [];
  });
}

/** Asserts `got` equals `want` as a multiset and each branch keeps the input order. */
function assertBranches(got: Routed[], want: Routed[]): void {
  assert.deepEqual(sortedJson(got), sortedJson(want));
  for (const branch of new Set(want.map((r) => r.branch))) {
    const ns = got.filter((r) => r.branch === branch).map((r) => r.n);
    assert.deepEqual(
      ns,
      [...ns].sort((a, b) => a - b),
      `branch ${branch} is out of order`,
    );
  }
}

for (const { shape, overrides } of VARIANTS) {
  test(`route with otherwise: each record reaches exactly its branch, unmatched labels the otherwise branch (${shape.variant})`, async () => {
    const config = testConfig(`graphs-route-${shape.variant}`, overrides);
    const output = join(config.dir, "out.jsonl");
    const { job, result } = await runJob(routePipeline({ ...shape, variant: `otherwise-${shape.variant}`, otherwise: true }), config, { output });
    const want = routeReference(true);
    assertBranches(readJsonl<Routed>(output), want);
    const per = (label: string) => NUMBERS.filter((n) => mod3Label(n) === label).length;
    assert.deepEqual(ins(result.counts, "mod3", "zero", "even-ones", "one", "other", "mod3-union", "out"), {
      mod3: N,
      zero: per("zero"),
      "even-ones": per("one"),
      one: want.filter((r) => r.branch === "one").length,
      other: per("two"),
      "mod3-union": want.length,
      out: want.length,
    });
    assert.equal(result.deadLetters, 0);
    assert.equal(result.deadLetterPath, null);
    if (shape.variant === "fused") assert.equal(job.plan!.stages.length, 1, "router, branches and union fuse into the source stage");
  });
}

for (const { shape, overrides } of VARIANTS.slice(0, 2)) {
  test(`route without otherwise: an unmatched label is a dead letter naming the router and the label, the rest flows (${shape.variant})`, async () => {
    const config = testConfig(`graphs-route-strict-${shape.variant}`, overrides);
    const output = join(config.dir, "out.jsonl");
    const { result } = await runJob(routePipeline({ ...shape, variant: `strict-${shape.variant}`, otherwise: false }), config, { output });
    assertBranches(readJsonl<Routed>(output), routeReference(false));
    const twos = NUMBERS.filter((n) => mod3Label(n) === "two");
    assert.equal(result.deadLetters, twos.length);
    assert.deepEqual(result.counts.mod3, { in: N, out: N - twos.length, dead: twos.length });
    const dead = readJsonl<DeadLetter>(result.deadLetterPath!);
    assert.deepEqual(
      dead.map((d) => d.record as number).sort((a, b) => a - b),
      twos,
    );
    for (const d of dead) {
      assert.equal(d.operator, "mod3");
      assert.equal(d.attempts, 1);
      assert.equal(d.error.message, 'router "mod3": no branch for label "two" (branches: zero, one)');
      assert.equal(d.error.code, "NON_RETRYABLE");
    }
  });
}

test("connect + class CoMapFunction over two sources: map1/map2 per input, open() once per worker process across jobs, close() at shutdown", async () => {
  coMapJournal.opens = 0;
  coMapJournal.closes = 0;
  coMapJournal.openedAs.length = 0;
  const fused = testConfig("graphs-comap");
  // Same task queue and data dir, fusion off: the same worker runs both plans.
  const unfused = { ...fused, execution: { ...fused.execution, fusion: false } };
  const pipeline = coMapPipeline({ variant: "class" });
  const worker = await startWorker(pipeline, fused);
  const clients = [await SageClient.connect({ config: fused }), await SageClient.connect({ config: unfused })];
  const want = [
    ...NUMBERS.map((n) => ({ input: 1, value: `n=${n}`, by: "describe" })),
    ...WORDS.map((w) => ({ input: 2, value: `w=${w}@describe`, by: "describe" })),
  ];
  try {
    const runs = [
      { label: "fused", client: clients[0]!, parallelism: undefined },
      { label: "unfused", client: clients[1]!, parallelism: undefined },
      { label: "parallelism 3", client: clients[0]!, parallelism: 3 },
    ];
    for (const run of runs) {
      const output = join(fused.dir, `${run.label.replace(/ /g, "-")}.jsonl`);
      const job = await run.client.submit(pipeline, { params: { output }, ...(run.parallelism ? { parallelism: run.parallelism } : {}) });
      const result = await job.result();
      const got = readJsonl<{ input: number; value: string; by: string }>(output);
      assert.deepEqual(sortedJson(got), sortedJson(want), run.label);
      for (const input of [1, 2]) {
        assert.deepEqual(
          got.filter((r) => r.input === input),
          want.filter((r) => r.input === input),
          `${run.label}: input ${input} out of order`,
        );
      }
      assert.deepEqual(result.counts.describe, { in: N + WORDS.length, out: N + WORDS.length, dead: 0 }, run.label);
    }
    assert.equal(coMapJournal.opens, 1, "open() once for three jobs and three plans");
    assert.deepEqual(coMapJournal.openedAs, ["describe"]);
    assert.equal(coMapJournal.closes, 0, "close() before the worker shut down");
  } finally {
    for (const c of clients) await c.close();
    await worker.stop();
  }
  assert.equal(coMapJournal.closes, 1);
});

for (const { shape, overrides } of VARIANTS) {
  test(`connect + coFlatMap of a stream and its side output: zero, one or two outputs per input (${shape.variant})`, async () => {
    const config = testConfig(`graphs-coflatmap-${shape.variant}`, overrides);
    const output = join(config.dir, "out.jsonl");
    const { job, result } = await runJob(coFlatMapPipeline(shape), config, { output });
    const evens = NUMBERS.filter((n) => n % 2 === 0);
    const odds = NUMBERS.filter((n) => n % 2 === 1);
    const fromEvens = evens.flatMap((n) => [n, n + 0.5]);
    const fromOdds = odds.filter((n) => n % 5 !== 0).map((n) => `odd ${n}`);
    const got = readJsonl<number | string>(output);
    assert.deepEqual(sortedJson(got), sortedJson([...fromEvens, ...fromOdds]));
    assert.deepEqual(
      got.filter((v) => typeof v === "number"),
      fromEvens,
    );
    assert.deepEqual(
      got.filter((v) => typeof v === "string"),
      fromOdds,
    );
    assert.deepEqual(result.counts.both, { in: N, out: fromEvens.length + fromOdds.length, dead: 0 });
    if (shape.variant === "fused") assert.equal(job.plan!.stages.length, 1, "both inputs in one stage: the co-flat-map fuses");
  });
}

/** How often `halve` must run on `x` until it is below 1. */
function passesOf(x: number): number {
  let passes = 1;
  for (let v = x / 2; v >= 1; v /= 2) passes++;
  return passes;
}

for (const { shape, overrides } of VARIANTS) {
  test(`a feedback loop that converges: every record reaches the sink after its own number of rounds (${shape.variant})`, async () => {
    const config = testConfig(`graphs-loop-${shape.variant}`, overrides);
    const output = join(config.dir, "out.jsonl");
    const { job, result } = await runJob(halvingPipeline({ ...shape, variant: `converge-${shape.variant}`, maxRounds: 20 }), config, { output });
    const want: Halving[] = SEEDS.map((x) => ({ id: x, x: x / 2 ** passesOf(x), passes: passesOf(x) }));
    const got = readJsonl<Halving>(output);
    assert.deepEqual(sortedJson(got), sortedJson(want));
    const loops = want.reduce((n, r) => n + r.passes - 1, 0);
    assert.ok(Math.max(...want.map((r) => r.passes)) >= 13, "the seeds must loop many rounds");
    assert.deepEqual(ins(result.counts, "seeds", "enter", "halve", "loop", "out"), {
      seeds: SEEDS.length,
      enter: SEEDS.length + loops,
      halve: SEEDS.length + loops,
      loop: loops,
      out: SEEDS.length,
    });
    assert.equal(result.deadLetters, 0);
    const back = job.plan!.edges.filter((e) => e.feedback);
    assert.equal(back.length, 1);
    assert.equal(back[0]!.toOperator, "loop");
  });
}

for (const { shape, overrides } of [VARIANTS[0]!, VARIANTS[2]!]) {
  test(`a feedback loop that hits its bound: records still looping go to the dead letters with the bound, the rest flows (${shape.variant})`, async () => {
    const maxRounds = 3;
    const config = testConfig(`graphs-bound-${shape.variant}`, overrides);
    const output = join(config.dir, "out.jsonl");
    const { result } = await runJob(halvingPipeline({ ...shape, variant: `bound-${shape.variant}`, maxRounds }), config, { output });
    // A record may go around the loop maxRounds times: at most maxRounds + 1 passes through `halve`.
    const converging = SEEDS.filter((x) => passesOf(x) <= maxRounds + 1);
    const stuck = SEEDS.filter((x) => passesOf(x) > maxRounds + 1).sort((a, b) => a - b);
    assert.ok(converging.length > 0 && stuck.length > 0);
    const got = readJsonl<Halving>(output);
    assert.deepEqual(sortedJson(got), sortedJson(converging.map((x) => ({ id: x, x: x / 2 ** passesOf(x), passes: passesOf(x) }))));
    assert.equal(result.deadLetters, stuck.length);
    assert.equal(result.counts.check?.dead, stuck.length);
    const dead = readJsonl<DeadLetter>(result.deadLetterPath!);
    assert.deepEqual(
      dead.map((d) => (d.record as Halving).id).sort((a, b) => a - b),
      stuck,
    );
    for (const d of dead) {
      assert.equal(d.operator, "check");
      assert.equal(d.error.message, `feedback "loop": the record is still looping after ${maxRounds} round(s), its bound`);
      const r = d.record as Halving;
      assert.equal(r.passes, maxRounds + 1);
      assert.equal(r.x, r.id / 2 ** (maxRounds + 1));
    }
  });
}

test("two feedback loops in series: each bounds a record's trips around itself, not around both", async () => {
  const config = testConfig("graphs-two-loops");
  const output = join(config.dir, "out.jsonl");
  // Seeds up to 7777 need up to 13 passes (12 trips) in each loop: within a bound of 12 per loop, over it for both together.
  const { result } = await runJob(twoLoopsPipeline({ variant: "series", maxRounds: 12 }), config, { output });
  assert.equal(
    result.deadLetters,
    0,
    `dead letters: ${result.deadLetterPath ? readFileSync(result.deadLetterPath, "utf8").split("\n").slice(0, 2).join("\n") : ""}`,
  );
  const want: Halving[] = SEEDS.map((x) => ({ id: x, x: x / 2 ** passesOf(x), passes: passesOf(x) }));
  assert.deepEqual(sortedJson(readJsonl<Halving>(output)), sortedJson(want));
  const loops = want.reduce((n, r) => n + r.passes - 1, 0);
  assert.deepEqual(ins(result.counts, "loop-a", "loop-b", "out"), { "loop-a": loops, "loop-b": loops, out: SEEDS.length });
});

test("a feedback loop of fifty rounds: the records that went round and round reach the sink", { timeout: 60_000 }, async () => {
  const config = testConfig("graphs-long-loop");
  const output = join(config.dir, "out.jsonl");
  const seeds = [2 ** 50, 2 ** 49 + 3, 5, 0];
  const { result } = await runJob(halvingPipeline({ variant: "long", maxRounds: 64, seeds }), config, { output });
  const want: Halving[] = seeds.map((x) => ({ id: x, x: x / 2 ** passesOf(x), passes: passesOf(x) }));
  assert.equal(Math.max(...want.map((r) => r.passes)), 51);
  assert.deepEqual(sortedJson(readJsonl<Halving>(output)), sortedJson(want));
  assert.equal(
    result.counts.loop?.in,
    want.reduce((n, r) => n + r.passes - 1, 0),
  );
  assert.equal(result.deadLetters, 0);
});
