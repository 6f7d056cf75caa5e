/**
 * Unit tests of what is decided before anything runs: operator options (retry, timeout, uid),
 * definition errors, parameter resolution, how function objects are hashed, how records are
 * encoded where they leave a stage, and which errors fail a whole job.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { definePipeline } from "../../core/api/pipeline.js";
import { FileSink, PrintSink } from "../../core/api/connectors.js";
import { OutputTag } from "../../core/api/context.js";
import { MapFunction } from "../../core/api/functions.js";
import { resolvePlanString } from "../../core/api/params.js";
import { DEFAULT_RETRY } from "../../core/plan/logical.js";
import {
  failsJob,
  isRetriable,
  ModelUnavailableError,
  NonRetryableError,
  NonSerializableValueError,
  NotRecordedError,
  PayloadBudgetError,
  PipelineDefinitionError,
  PlanMismatchError,
  SageError,
  SinkError,
  SourceError,
} from "../../core/errors.js";
import { checkRecordSize, encodeRecord } from "../../activities/record-codec.js";

/** A file sink of any element type (never written: these pipelines are only compiled). */
const out = <T>() => FileSink.jsonl<T>("/tmp/unused.jsonl");

test("retry options merge with the defaults; timeoutMs defaults to none", () => {
  const { plan } = definePipeline("retry-merge", (env) =>
    env
      .fromCollection([1], { name: "src" })
      .map((x) => x, { name: "a", retry: { maxAttempts: 5 } })
      .map((x) => x, { name: "b", timeoutMs: 250 })
      .sink(out(), { name: "out" }),
  ).compile();
  const node = (id: string) => plan.nodes.find((n) => n.id === id)!;
  assert.deepEqual(node("a").retry, { ...DEFAULT_RETRY, maxAttempts: 5 });
  assert.equal(node("a").timeoutMs, 0);
  assert.deepEqual(node("b").retry, DEFAULT_RETRY);
  assert.equal(node("b").timeoutMs, 250);
});

test("retry.maxAttempts below 1 or fractional is a definition error naming the operator", () => {
  for (const maxAttempts of [0, -1, 1.5]) {
    const p = definePipeline("bad-retry", (env) =>
      env
        .fromCollection([1], { name: "src" })
        .map((x) => x, { name: "enrich", retry: { maxAttempts } })
        .sink(out()),
    );
    assert.throws(
      () => p.compile(),
      (err: unknown) =>
        err instanceof PipelineDefinitionError && err.message === `operator "enrich": retry.maxAttempts must be an integer >= 1, got ${maxAttempts}`,
    );
  }
});

test("a uid is the operator id; the name stays the display name; uids must be unique too", () => {
  const { plan } = definePipeline("uids", (env) =>
    env
      .fromCollection([1], { name: "src" })
      .map((x) => x, { name: "enrich", uid: "enrich-v2" })
      .sink(out(), { name: "out" }),
  ).compile();
  const node = plan.nodes[1]!;
  assert.equal(node.id, "enrich-v2");
  assert.equal(node.name, "enrich");
  assert.deepEqual(plan.nodes[2]!.inputs, [{ from: "enrich-v2", tag: null }]);
  const clash = definePipeline("uid-clash", (env) =>
    env
      .fromCollection([1], { name: "src" })
      .map((x) => x, { name: "a", uid: "same" })
      .map((x) => x, { name: "b", uid: "same" })
      .sink(out()),
  );
  assert.throws(() => clash.compile(), PipelineDefinitionError);
});

test("names, uids, parameter names and output tags with characters outside the id alphabet are rejected", () => {
  assert.throws(
    () =>
      definePipeline("bad-name", (env) =>
        env
          .fromCollection([1])
          .map((x) => x, { name: "my op" })
          .sink(out()),
      ).compile(),
    /operator name "my op" \(operator #1, map\) must match/,
  );
  assert.throws(
    () =>
      definePipeline("bad-uid", (env) =>
        env
          .fromCollection([1])
          .map((x) => x, { uid: "a/b" })
          .sink(out()),
      ).compile(),
    /operator uid "a\/b"/,
  );
  assert.throws(() => definePipeline("bad-param", (env) => env.fromCollection([env.param("in put")]).sink(out())).compile(), /parameter name "in put"/);
  assert.throws(() => new OutputTag<number>("odd one"), /OutputTag id "odd one" must match/);
});

test("fromCollection items that JSON cannot carry are a definition error naming the source", () => {
  const p = definePipeline("bad-items", (env) => env.fromCollection([1n, 2n], { name: "bigs" }).sink(out()));
  assert.throws(
    () => p.compile(),
    (err: unknown) => err instanceof PipelineDefinitionError && err.message.startsWith('fromCollection "bigs": items must be JSON-serializable'),
  );
});

test("a function object is hashed as first compiled: state its methods store later does not change the plan hash", () => {
  class Enricher extends MapFunction<number, number> {
    client: { url: string } | null = null;
    calls = 0;
    constructor(readonly factor: number) {
      super();
    }
    open(): void {
      this.client = { url: "http://model" };
    }
    map(v: number): number {
      this.calls++;
      return v * this.factor;
    }
  }
  const shared = new Enricher(2);
  const withShared = definePipeline("hash-state", (env) =>
    env.fromCollection([1], { name: "src" }).map(shared, { name: "enrich" }).sink(out(), { name: "out" }),
  );
  const before = withShared.compile().plan.hash;
  shared.open();
  shared.map(1);
  assert.equal(withShared.compile().plan.hash, before);
  // Configuration still counts: another instance with another factor is another plan.
  const fresh = (factor: number) =>
    definePipeline("hash-state", (env) =>
      env.fromCollection([1], { name: "src" }).map(new Enricher(factor), { name: "enrich" }).sink(out(), { name: "out" }),
    ).compile().plan.hash;
  assert.equal(fresh(2), before);
  assert.notEqual(fresh(3), before);
});

test("plan strings resolve from the given parameter, then the default; a missing one names itself and its user", () => {
  assert.equal(resolvePlanString("/literal", {}, "sink"), "/literal");
  assert.equal(resolvePlanString({ $param: "in" }, { in: "/given" }, "source"), "/given");
  assert.equal(resolvePlanString({ $param: "in", default: "/default" }, {}, "source"), "/default");
  assert.equal(resolvePlanString({ $param: "in", default: "/default" }, { in: "" }, "source"), "");
  assert.throws(() => resolvePlanString({ $param: "out" }, { in: "x" }, 'sink "out"'), {
    message: 'sink "out" needs job parameter "out", which was not given (pass --param out=...)',
  });
});

test("encodeRecord is JSON, and names the producer and the place of a value JSON would drop or cannot encode", () => {
  assert.equal(encodeRecord({ a: [1, "x", null, { b: true }] }, "op"), '{"a":[1,"x",null,{"b":true}]}');
  assert.equal(encodeRecord("text", "op"), '"text"');
  const cycle: Record<string, unknown> = {};
  cycle.me = { back: cycle };
  const cases: Array<[unknown, string]> = [
    [{ n: 5n }, 'key "n" is a BigInt (5n)'],
    [{ deep: { fn: () => 1 } }, 'key "fn" is a function'],
    [{ s: Symbol("x") }, 'key "s" is a symbol'],
    [{ a: undefined }, 'key "a" is undefined'],
    [[1, undefined], 'key "1" is undefined'],
    [undefined, "the record itself is undefined"],
    [cycle, "it contains a cycle"],
  ];
  for (const [value, reason] of cases) {
    assert.throws(
      () => encodeRecord(value, "shape"),
      (err: unknown) =>
        err instanceof NonSerializableValueError &&
        err.code === "NON_SERIALIZABLE" &&
        err.message === `operator "shape" emitted a value that cannot be serialized as JSON: ${reason}`,
      reason,
    );
  }
});

test("checkRecordSize allows a record at the budget and refuses one byte more", () => {
  const json = encodeRecord({ pad: "x".repeat(90) }, "op");
  checkRecordSize(json, "op", json.length);
  assert.throws(
    () => checkRecordSize(json, "op", json.length - 1),
    (err: unknown) => err instanceof PayloadBudgetError && err.message.includes(`operator "op" emitted a record of ${json.length} bytes`),
  );
});

test("only plan, serialization, budget, source, sink and model-availability errors leave the record; others dead-letter it", () => {
  const leaving = [
    new PlanMismatchError("a", "b", "p"),
    new NonSerializableValueError("x"),
    new PayloadBudgetError("x"),
    new SourceError("x"),
    new SinkError("x"),
    new ModelUnavailableError("x", null),
    new NotRecordedError("x"),
  ];
  assert.deepEqual(
    leaving
      .filter(failsJob)
      .map((e) => e.code)
      .sort(),
    ["MODEL_UNAVAILABLE", "NON_SERIALIZABLE", "NOT_RECORDED", "PAYLOAD_BUDGET", "PLAN_MISMATCH", "SINK", "SOURCE"],
  );
  assert.equal(failsJob(new NonSerializableValueError("x")), true);
  assert.equal(failsJob(new PayloadBudgetError("x")), true);
  assert.equal(failsJob(new SourceError("x")), true);
  assert.equal(failsJob(new SinkError("x")), true);
  assert.equal(failsJob(new NonRetryableError("x")), false);
  assert.equal(failsJob(new Error("x")), false);
  assert.equal(failsJob(Object.assign(new Error("x"), { code: "SINK", scope: "job" })), false, "only our own errors leave the record");
  assert.equal(failsJob(new SageError("USER_CODE", "x")), false, "a Sage error fails its record unless it says otherwise");
  assert.equal(new ModelUnavailableError("x", null).retriable, true, "a model outage fails the stage attempt, which Temporal retries");
  assert.equal(isRetriable(new Error("x")), true, "a foreign error may pass on a retry");
  assert.equal(isRetriable(new NonRetryableError("x")), false);
  const e = new NonRetryableError("bad record");
  assert.equal(e.code, "NON_RETRYABLE");
  assert.equal(e.retriable, false);
  assert.equal(e.name, "NonRetryableError");
});

test("a dead-letter sink must be a file sink: any other kind is refused instead of silently ignored", () => {
  const p = definePipeline("dl-print", (env) => {
    env.setDeadLetterSink(PrintSink.stdout());
    env.fromCollection([1], { name: "src" }).sink(out());
  });
  assert.throws(
    () => p.compile(),
    (err: unknown) =>
      err instanceof PipelineDefinitionError &&
      err.message === 'pipeline "dl-print": setDeadLetterSink takes a file sink (FileSink.jsonl(...)), got a print sink',
  );
  const ok = definePipeline("dl-file", (env) => {
    env.setDeadLetterSink(FileSink.jsonl(env.param("dead")));
    env.fromCollection([1], { name: "src" }).sink(out());
  });
  assert.deepEqual(ok.compile().plan.deadLetter, { kind: "file", format: "jsonl", path: { $param: "dead" } });
});
