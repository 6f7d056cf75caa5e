/**
 * The stage runner against an in-memory host (no Temporal, no Kafka): a fused chain over file
 * splits into a file sink, a collection source into a user sink, process() side outputs, route
 * labels, and edge batches between unfused stages, with the counts each operator reports.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { definePipeline } from "../../../core/api/pipeline.js";
import { FileSink, FileSource } from "../../../core/api/connectors.js";
import { OutputTag, type ProcessContext, type SinkContext } from "../../../core/api/context.js";
import { RichSinkFunction } from "../../../core/api/functions.js";
import { MemoryHost, readJsonl, type DeadLetter } from "./memory-host.js";

/** 120 lines "<n> <word> ..." of 1 to 4 words; line 7 and every 10th after it has no words. */
function lines(): string[] {
  const words = ["alpha", "be", "gamma", "do", "epsilon"];
  return Array.from({ length: 120 }, (_, n) => (n % 10 === 7 ? `${n}` : `${n} ${words.slice(0, 1 + (n % 4)).join(" ")}`));
}

const wordsPipeline = definePipeline("unit-words", (env) =>
  env
    .fromSource(FileSource.lines(env.param("input"), { splitBytes: 256 }), { name: "lines" })
    .map((line: string) => line.split(" "), { name: "split" })
    .filter((parts: string[]) => parts.length > 1, { name: "has-words" })
    .flatMap((parts: string[]) => parts.slice(1).map((word) => ({ line: Number(parts[0]), word })), { name: "words" })
    .sink(FileSink.jsonl(env.param("output")), { name: "out" }),
);

/** What the words pipeline must write for `input`, computed without it. */
function expectedWords(input: string[]): Array<{ line: number; word: string }> {
  return input.flatMap((l) => {
    const [n, ...words] = l.split(" ");
    return words.map((word) => ({ line: Number(n), word }));
  });
}

test("a fused chain over several file splits writes every record once, in order, and counts each operator", async () => {
  const host = new MemoryHost(wordsPipeline);
  try {
    const input = lines();
    writeFileSync(host.path("in.txt"), `${input.join("\n")}\n`);
    const job = await host.run("fused", { input: host.path("in.txt"), output: host.path("out.jsonl") });
    assert.equal(host.registry.compile(1, true).plan.stages.length, 1, "one fused stage");
    assert.ok(job.calls.length > 3, `several splits (${job.calls.length})`);
    const expected = expectedWords(input);
    assert.deepEqual(readJsonl(host.path("out.jsonl")), expected);
    const empty = input.filter((l) => !l.includes(" ")).length;
    assert.deepEqual(job.counts, {
      lines: { in: 120, out: 120, dead: 0 },
      split: { in: 120, out: 120, dead: 0 },
      "has-words": { in: 120, out: 120 - empty, dead: 0 },
      words: { in: 120 - empty, out: expected.length, dead: 0 },
      out: { in: expected.length, out: expected.length, dead: 0 },
    });
    assert.equal(job.commit.deadLetterPath, null);
  } finally {
    await host.close();
  }
});

test("a JSON Lines line that does not parse is counted into the source and dead-lettered; the rest go on", async () => {
  const pipeline = definePipeline("unit-jsonl", (env) =>
    env
      .fromSource(FileSource.jsonl<{ n: number }>(env.param("input")), { name: "events" })
      .map((e) => ({ n: e.n * 2 }), { name: "double" })
      .sink(FileSink.jsonl(env.param("output")), { name: "out" }),
  );
  const host = new MemoryHost(pipeline);
  try {
    writeFileSync(host.path("in.jsonl"), '{"n":1}\n{"n":\n{"n":3}\n');
    const job = await host.run("jsonl", { input: host.path("in.jsonl"), output: host.path("out.jsonl") });
    assert.deepEqual(readJsonl(host.path("out.jsonl")), [{ n: 2 }, { n: 6 }]);
    assert.deepEqual(job.counts.events, { in: 3, out: 2, dead: 1 });
    const [letter, ...more] = readJsonl<DeadLetter>(job.commit.deadLetterPath!);
    assert.equal(more.length, 0);
    assert.deepEqual([letter!.operator, letter!.attempts, letter!.error.code, letter!.record], ["events", 1, "NON_RETRYABLE", '{"n":']);
  } finally {
    await host.close();
  }
});

/** A user sink that keeps what it got, and whether `finish` ran after the last record. */
class Collect extends RichSinkFunction<number> {
  readonly got: Array<{ value: number; shard: string }> = [];
  finishedAfter = -1;
  invoke(value: number, ctx: SinkContext): void {
    this.got.push({ value, shard: ctx.shard });
  }
  finish(): void {
    this.finishedAfter = this.got.length;
  }
}

test("a collection source feeds a user sink in order; the sink's finish runs after its last record; heartbeats flow", async () => {
  const sink = new Collect();
  const items = Array.from({ length: 2500 }, (_, i) => i);
  const pipeline = definePipeline("unit-collection", (env) =>
    env
      .fromCollection(items, { name: "numbers" })
      .map((n: number) => n * 3, { name: "triple" })
      .sink(sink, { name: "collect" }),
  );
  const host = new MemoryHost(pipeline);
  try {
    const job = await host.run("collection", {});
    assert.deepEqual(
      sink.got.map((g) => g.value),
      items.map((n) => n * 3),
    );
    assert.equal(sink.finishedAfter, items.length);
    assert.deepEqual(new Set(sink.got.map((g) => g.shard)), new Set(job.calls.map((c) => c.input.shard)));
    assert.deepEqual(job.counts.numbers, { in: 2500, out: 2500, dead: 0 });
    assert.deepEqual(job.counts.collect, { in: 2500, out: 2500, dead: 0 });
    assert.ok(job.heartbeats >= 2, `the runner heartbeats every 1000 records (${job.heartbeats})`);
  } finally {
    await host.close();
  }
});

const odd = new OutputTag<number>("odd");

test("process() sends records to the main output and to side outputs, and a retried record emits once", async () => {
  const tries = new Map<number, number>();
  const pipeline = definePipeline("unit-process", (env) => {
    const split = env.fromCollection([1, 2, 3, 4, 5, 6], { name: "numbers" }).process(
      (n: number, ctx: ProcessContext<number>) => {
        tries.set(n, (tries.get(n) ?? 0) + 1);
        if (n % 2 === 0) ctx.emit(n * 10);
        else ctx.output(odd, n);
        if (n === 3 && ctx.attempt === 1) throw new Error("first try of 3 fails after it emitted");
      },
      { name: "parity", retry: { maxAttempts: 2, initialIntervalMs: 1 } },
    );
    split.sink(FileSink.jsonl(env.param("even")), { name: "even" });
    split.getSideOutput(odd).sink(FileSink.jsonl(env.param("odd")), { name: "odd" });
  });
  const host = new MemoryHost(pipeline);
  try {
    const job = await host.run("process", { even: host.path("even.jsonl"), odd: host.path("odd.jsonl") });
    assert.deepEqual(readJsonl(host.path("even.jsonl")), [20, 40, 60]);
    assert.deepEqual(readJsonl(host.path("odd.jsonl")), [1, 3, 5]);
    assert.equal(tries.get(3), 2);
    assert.deepEqual(job.counts.parity, { in: 6, out: 6, dead: 0 });
    assert.deepEqual(job.counts.odd, { in: 3, out: 3, dead: 0 });
  } finally {
    await host.close();
  }
});

test("route sends each record to the branch its label names, the rest to otherwise; without otherwise, to the dead letters", async () => {
  const build = (withOtherwise: boolean) =>
    definePipeline(`unit-route-${withOtherwise}`, (env) =>
      env
        .fromCollection(["a1", "b2", "c3", "a4", "z5"], { name: "tokens" })
        .route<string>(
          [
            ["a", (s) => s.map((t) => `A:${t}`, { name: "on-a" })],
            ["b", (s) => s.map((t) => `B:${t}`, { name: "on-b" })],
          ],
          { name: "by-letter", by: (t: string) => t[0]!, ...(withOtherwise ? { otherwise: (s) => s.map((t) => `?:${t}`, { name: "on-other" }) } : {}) },
        )
        .sink(FileSink.jsonl(env.param("output")), { name: "out" }),
    );
  const withOther = new MemoryHost(build(true));
  const without = new MemoryHost(build(false));
  try {
    const a = await withOther.run("route", { output: withOther.path("out.jsonl") });
    assert.deepEqual(readJsonl(withOther.path("out.jsonl")), ["A:a1", "B:b2", "?:c3", "A:a4", "?:z5"]);
    assert.deepEqual(a.counts["by-letter"], { in: 5, out: 5, dead: 0 });
    assert.deepEqual(a.counts["on-a"], { in: 2, out: 2, dead: 0 });
    const b = await without.run("route", { output: without.path("out.jsonl") });
    assert.deepEqual(readJsonl(without.path("out.jsonl")), ["A:a1", "B:b2", "A:a4"]);
    assert.deepEqual(b.counts["by-letter"], { in: 5, out: 3, dead: 2 });
    const letters = readJsonl<DeadLetter>(b.commit.deadLetterPath!);
    assert.deepEqual(
      letters.map((l) => [l.record, l.attempts, l.error.message]),
      [
        ["c3", 1, 'router "by-letter": no branch for label "c" (branches: a, b)'],
        ["z5", 1, 'router "by-letter": no branch for label "z" (branches: a, b)'],
      ],
    );
  } finally {
    await withOther.close();
    await without.close();
  }
});

test("unfused, each operator is a stage fed by edge batches: the same output and counts as fused", async () => {
  const fused = new MemoryHost(wordsPipeline);
  const unfused = new MemoryHost(wordsPipeline);
  try {
    const input = lines();
    for (const host of [fused, unfused]) writeFileSync(host.path("in.txt"), `${input.join("\n")}\n`);
    const a = await fused.run("edges", { input: fused.path("in.txt"), output: fused.path("out.jsonl") });
    const b = await unfused.run("edges", { input: unfused.path("in.txt"), output: unfused.path("out.jsonl") }, { fusion: false });
    const plan = unfused.registry.compile(1, false).plan;
    assert.equal(plan.stages.length, 5, "one stage per operator");
    assert.deepEqual(readJsonl(unfused.path("out.jsonl")), readJsonl(fused.path("out.jsonl")));
    assert.deepEqual(b.counts, a.counts);
    const downstream = b.calls.filter((c) => !c.input.split);
    assert.ok(downstream.length >= 4, "stages after the source ran on batches");
    for (const { input } of downstream) {
      assert.ok(input.batchRef && input.batchRef.count > 0, `stage ${input.stage} got its batch by reference`);
      assert.ok(
        plan.edges.some((e) => e.toStage === input.stage && e.id === input.edge),
        `stage ${input.stage} got its batch on a named edge`,
      );
    }
    const sent = b.calls.flatMap((c) => Object.values(c.output.refs ?? {})).reduce((n, r) => n + r.count, 0);
    const received = downstream.reduce((n, c) => n + c.input.batchRef!.count, 0);
    assert.equal(received, sent, "every record sent on an edge arrived");
  } finally {
    await fused.close();
    await unfused.close();
  }
});
