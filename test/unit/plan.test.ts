/** Unit tests of the pure planner: graph building, fusion, plan hash, rendering. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { definePipeline } from "../../core/api/pipeline.js";
import { FileSink, FileSource } from "../../core/api/connectors.js";
import { OutputTag } from "../../core/api/context.js";
import { MapFunction } from "../../core/api/functions.js";
import { PipelineDefinitionError } from "../../core/errors.js";
import { renderDot, renderMermaid, renderText } from "../../core/plan/render.js";

const wordcount = definePipeline("wc", (env) =>
  env
    .fromSource(FileSource.lines(env.param("input")), { name: "lines" })
    .flatMap((l: string) => l.split(" "), { name: "split" })
    .map((w) => ({ w }), { name: "pair" })
    .filter((p) => p.w.length > 2, { name: "no-short" })
    .sink(FileSink.jsonl(env.param("output")), { name: "out" }),
);

test("a stateless bounded chain fuses into one source stage", () => {
  const { plan } = wordcount.compile({ parallelism: 2 });
  assert.equal(plan.stages.length, 1);
  assert.equal(plan.stages[0]!.name, "lines+split+pair+no-short+out");
  assert.equal(plan.stages[0]!.source, true);
  assert.deepEqual(plan.edges, []);
});

test("the plan hash is stable, ignores parameter values, and changes with the code", () => {
  const a = wordcount.compile({ parallelism: 2 }).plan.hash;
  assert.equal(wordcount.compile({ parallelism: 2 }).plan.hash, a);
  assert.match(a, /^[0-9a-f]{64}$/);
  assert.notEqual(wordcount.compile({ parallelism: 3 }).plan.hash, a);
  const changed = definePipeline("wc", (env) =>
    env
      .fromSource(FileSource.lines(env.param("input")), { name: "lines" })
      .flatMap((l: string) => l.split(","), { name: "split" })
      .map((w) => ({ w }), { name: "pair" })
      .filter((p) => p.w.length > 2, { name: "no-short" })
      .sink(FileSink.jsonl(env.param("output")), { name: "out" }),
  );
  assert.notEqual(changed.compile({ parallelism: 2 }).plan.hash, a);
});

test("unequal parallelism cuts the chain and says why", () => {
  const p = definePipeline("cut", (env) =>
    env
      .fromCollection([1, 2, 3], { name: "nums" })
      .map((x) => x * 2, { name: "double" })
      .map((x) => x + 1, { name: "inc", parallelism: 4 })
      .sink(FileSink.jsonl("/tmp/x"), { name: "out", parallelism: 4 }),
  );
  const { plan } = p.compile({ parallelism: 2 });
  assert.deepEqual(
    plan.stages.map((s) => s.name),
    ["nums+double", "inc+out"],
  );
  assert.equal(plan.edges.length, 1);
  assert.match(plan.cuts[0]!.reason, /parallelism changes from 2 \("double"\) to 4 \("inc"\)/);
  assert.match(renderText(plan), /chains cut/);
  assert.match(renderMermaid(plan), /-\.->/);
  assert.match(renderDot(plan), /style=dashed/);
});

test("fusion off gives one stage per operator", () => {
  const { plan } = wordcount.compile({ parallelism: 2, fusion: false });
  assert.equal(plan.stages.length, 5);
  assert.equal(plan.edges.length, 4);
});

test("side outputs fuse with their consumers", () => {
  const odd = new OutputTag<number>("odd");
  const p = definePipeline("side", (env) => {
    const s = env.fromCollection([1, 2, 3], { name: "nums" }).process<number>((v, ctx) => (v % 2 ? ctx.output(odd, v) : ctx.emit(v)), { name: "route" });
    s.sink(FileSink.jsonl("/tmp/even"), { name: "even" });
    s.getSideOutput(odd).sink(FileSink.jsonl("/tmp/odd"), { name: "odds" });
  });
  const { plan } = p.compile();
  assert.equal(plan.stages.length, 1);
  assert.deepEqual(plan.nodes.find((n) => n.id === "odds")!.inputs, [{ from: "route", tag: "odd" }]);
});

test("two operators with the same name are rejected with both named", () => {
  const p = definePipeline("dup", (env) =>
    env
      .fromCollection([1], { name: "a" })
      .map((x) => x, { name: "same" })
      .map((x) => x, { name: "same" })
      .sink(FileSink.jsonl("/tmp/x")),
  );
  assert.throws(
    () => p.compile(),
    (err: unknown) => err instanceof PipelineDefinitionError && /two operators are named "same"/.test(err.message),
  );
});

test("a stream without a sink, and a pipeline without operators, are rejected", () => {
  assert.throws(() => definePipeline("nosink", (env) => env.fromCollection([1]).map((x) => x)).compile(), /has no sink/);
  assert.throws(() => definePipeline("empty", () => undefined).compile(), /declares no operators/);
  assert.throws(() => definePipeline("bad name!", () => undefined), /must match/);
});

test("class functions are hashed by class source and fields", () => {
  class Tagger extends MapFunction<string, string> {
    constructor(readonly tag: string) {
      super();
    }
    map(v: string): string {
      return `${this.tag}:${v}`;
    }
  }
  const make = (tag: string) =>
    definePipeline("cls", (env) =>
      env.fromCollection(["a"], { name: "src" }).map(new Tagger(tag), { name: "tag" }).sink(FileSink.jsonl("/tmp/x"), { name: "out" }),
    );
  assert.equal(make("x").compile().plan.hash, make("x").compile().plan.hash);
  assert.notEqual(make("x").compile().plan.hash, make("y").compile().plan.hash);
  assert.equal(make("x").compile().plan.nodes[1]!.form, "object");
});

test("invalid parallelism is a definition error", () => {
  assert.throws(
    () =>
      definePipeline("p0", (env) =>
        env
          .fromCollection([1])
          .map((x) => x, { parallelism: 0 })
          .sink(FileSink.jsonl("/tmp/x")),
      ).compile(),
    /parallelism must be a positive integer, got 0/,
  );
});
