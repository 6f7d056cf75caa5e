/** Unit tests of keyed pipelines at definition time: the errors a mistake gets, and the plan's shape. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { definePipeline, type Pipeline } from "../../core/api/pipeline.js";
import { FileSink, FileSource, KafkaSink, KafkaSource } from "../../core/api/connectors.js";
import type { DataStream } from "../../core/api/datastream.js";
import "../../core/api/keyed.js";
import type { AggregateFunction } from "../../core/api/state.js";
import { Duration, WatermarkStrategy } from "../../core/api/time.js";
import { CountWindow, SessionWindow, SlidingWindow, TumblingWindow } from "../../core/api/windows.js";
import { PipelineDefinitionError } from "../../core/errors.js";
import { DEFAULT_KEY_GROUPS } from "../../core/plan/logical.js";
import type { PhysicalPlan } from "../../core/plan/physical.js";
import { renderText } from "../../core/plan/render.js";
import { entryTopicsOf, keyedTopicsOf } from "../../core/plan/stream.js";
import wordcount from "../../examples/wordcount/pipeline.js";

interface Ev {
  k: string;
  ts: number;
  v: number;
}

/** A `PipelineDefinitionError` whose message matches every pattern. */
const definitionError =
  (...patterns: RegExp[]) =>
  (err: unknown): boolean => {
    assert.ok(err instanceof PipelineDefinitionError, `not a PipelineDefinitionError: ${String(err)}`);
    for (const p of patterns) assert.match(err.message, p);
    return true;
  };

/** What `compileWith` sends to its sink: a stream of any record type. */
type Sinkable = Pick<DataStream<unknown>, "sink">;

/** Compiles a one-source pipeline: `body` gets the file source (with timestamps unless `timed` is false) and returns what goes to the sink. */
function compileWith(body: (events: DataStream<Ev>) => Sinkable, timed = true): PhysicalPlan {
  return definePipeline("keyed-plan", (env) => {
    const source = env.fromSource(FileSource.jsonl<Ev>("/tmp/in.jsonl"), { name: "in" });
    const events = timed
      ? source.assignTimestampsAndWatermarks(
          WatermarkStrategy.forBoundedOutOfOrderness<Ev>(Duration.ofSeconds(2)).withTimestampAssigner((e) => e.ts),
          {
            name: "timestamps",
          },
        )
      : source;
    body(events).sink(FileSink.jsonl("/tmp/out.jsonl"), { name: "out" });
  }).compile({ parallelism: 2 }).plan;
}

const byKey = (events: DataStream<Ev>, name = "by-k") => events.keyBy((e) => e.k, { name });

/** Counts records; `merge` only when asked (session windows need it). */
const counter = (withMerge: boolean): AggregateFunction<Ev, number, number> => ({
  createAccumulator: () => 0,
  add: (_e, n) => n + 1,
  getResult: (n) => n,
  ...(withMerge ? { merge: (a: number, b: number) => a + b } : {}),
});

test("every stateful operator without a uid or a name is refused, saying which one and why", () => {
  const cases: Array<[string, (events: DataStream<Ev>) => Sinkable]> = [
    ["reduce", (s) => byKey(s).reduce((a, b) => ({ ...a, v: a.v + b.v }))],
    ["aggregate", (s) => byKey(s).aggregate(counter(false))],
    ["process", (s) => byKey(s).process({ processElement: () => undefined })],
    [
      "window",
      (s) =>
        byKey(s)
          .window(TumblingWindow.of(1_000))
          .reduce((a) => a),
    ],
    [
      "window",
      (s) =>
        byKey(s)
          .window(CountWindow.of(3))
          .aggregate(counter(false), (k, _w, n) => ({ k, n })),
    ],
    [
      "window",
      (s) =>
        byKey(s)
          .window(SlidingWindow.of(2_000, 1_000))
          .process((_k, els, ctx) => ctx.emit(els.length)),
    ],
    [
      "windowJoin",
      (s) =>
        s
          .join(s)
          .where((e) => e.k)
          .equalTo((e) => e.k)
          .window(TumblingWindow.of(1_000))
          .apply((a, b) => a.v + b.v),
    ],
    [
      "intervalJoin",
      (s) =>
        byKey(s)
          .intervalJoin(byKey(s, "by-k2"))
          .between(-5, 5)
          .process((a, b, ctx) => ctx.emit(a.v + b.v)),
    ],
  ];
  for (const [op, body] of cases) {
    assert.throws(
      () => compileWith(body),
      definitionError(new RegExp(`pipeline "keyed-plan": stateful operator #\\d+ \\(${op}\\) needs a uid or a name: its state is matched by it`)),
      op,
    );
  }
  // Either one is enough; the uid is the operator's id, and so its state's.
  const withUid = compileWith((s) => byKey(s).reduce((a) => a, { uid: "sum-v1" }));
  assert.ok(withUid.nodes.some((n) => n.id === "sum-v1" && n.kind === "keyed"));
  const withName = compileWith((s) => byKey(s).reduce((a) => a, { name: "sum" }));
  assert.ok(withName.nodes.some((n) => n.id === "sum" && n.kind === "keyed"));
});

test("a window size of 0 or below, or not a whole number of ms, is refused by the assigner that got it", () => {
  for (const size of [0, -1_000, 1.5, Number.NaN, Number.POSITIVE_INFINITY, Duration.ofMillis(0), Duration.ofSeconds(-1)]) {
    const got = typeof size === "number" ? String(size) : String(size.toMillis());
    assert.throws(
      () => TumblingWindow.of(size),
      definitionError(new RegExp(`^TumblingWindow\\.of: the size must be a whole number of milliseconds >= 1, got ${got.replace(".", "\\.")}$`)),
    );
    assert.throws(() => SlidingWindow.of(size, 1), definitionError(/^SlidingWindow\.of: the size must be a whole number of milliseconds >= 1/));
  }
  assert.throws(() => SlidingWindow.of(1_000, 0), definitionError(/^SlidingWindow\.of: the slide must be a whole number of milliseconds >= 1, got 0$/));
  assert.throws(() => SlidingWindow.of(1_000, -10), definitionError(/^SlidingWindow\.of: the slide must be .* got -10$/));
  for (const [size, slide] of [
    [0, 0],
    [-3, -3],
    [2.5, 1],
    [3, 0],
    [3, 1.5],
  ] as const) {
    assert.throws(() => CountWindow.of(size, slide), definitionError(/^CountWindow\.of: the (size|slide) must be an integer >= 1, got /), `${size}, ${slide}`);
  }
  assert.throws(() => CountWindow.of(Number.NaN), definitionError(/^CountWindow\.of: the size must be an integer >= 1, got NaN$/));
  // The bounds that are allowed.
  assert.deepEqual(TumblingWindow.of(1).spec, { kind: "tumbling", sizeMs: 1, offsetMs: 0, time: "event" });
  assert.deepEqual(CountWindow.of(1).spec, { kind: "count", size: 1, slide: 1 });
});

test("a slide larger than the size is refused, with both numbers, for sliding and count windows", () => {
  assert.throws(() => SlidingWindow.of(1_000, 1_001), definitionError(/^SlidingWindow\.of: the slide \(1001 ms\) is larger than the size \(1000 ms\)$/));
  assert.throws(
    () => SlidingWindow.of(Duration.ofMinutes(1), Duration.ofMinutes(5)),
    definitionError(/^SlidingWindow\.of: the slide \(300000 ms\) is larger than the size \(60000 ms\)$/),
  );
  assert.throws(() => CountWindow.of(3, 5), definitionError(/^CountWindow\.of: the slide \(5\) is larger than the size \(3\)$/));
  // Equal is a tumbling window in disguise, and fine.
  assert.deepEqual(SlidingWindow.of(1_000, 1_000).spec, { kind: "sliding", sizeMs: 1_000, slideMs: 1_000, offsetMs: 0, time: "event" });
  assert.deepEqual(CountWindow.of(3, 3).spec, { kind: "count", size: 3, slide: 3 });
});

test("a session gap of 0 or below is refused", () => {
  for (const gap of [0, -1, Duration.ofSeconds(0), 0.5]) {
    assert.throws(() => SessionWindow.withGap(gap), definitionError(/^SessionWindow\.withGap: the gap must be a whole number of milliseconds >= 1, got /));
  }
  assert.deepEqual(SessionWindow.withGap(Duration.ofSeconds(30)).spec, { kind: "session", gapMs: 30_000, time: "event" });
});

test("an event-time window, window join or interval join with no timestamps on a file source fails, naming the operator and the fix", () => {
  const fix = /call assignTimestampsAndWatermarks\(WatermarkStrategy\.\.\.\) before keyBy/;
  const cases: Array<[string, (events: DataStream<Ev>) => Sinkable]> = [
    [
      "tumbling-sum",
      (s) =>
        byKey(s)
          .window(TumblingWindow.of(10_000))
          .reduce((a) => a, { name: "tumbling-sum" }),
    ],
    ["sliding-count", (s) => byKey(s).window(SlidingWindow.of(10_000, 5_000)).aggregate(counter(false), { name: "sliding-count" })],
    [
      "sessions",
      (s) =>
        byKey(s)
          .window(SessionWindow.withGap(1_000))
          .process((_k, els, ctx) => ctx.emit(els.length), { name: "sessions" }),
    ],
    [
      "pairs",
      (s) =>
        s
          .join(s)
          .where((e) => e.k)
          .equalTo((e) => e.k)
          .window(TumblingWindow.of(1_000))
          .apply((a, b) => a.v + b.v, { name: "pairs" }),
    ],
    [
      "near",
      (s) =>
        byKey(s)
          .intervalJoin(byKey(s, "by-k2"))
          .between(-5, 5)
          .process((a, b, ctx) => ctx.emit(a.v + b.v), { name: "near" }),
    ],
  ];
  for (const [name, body] of cases) {
    assert.throws(
      () => compileWith(body, false),
      definitionError(new RegExp(`^pipeline "keyed-plan": "${name}" works in event time, but its input has no timestamps: `), fix),
      name,
    );
  }
  // What needs no event time compiles without timestamps: count windows, processing-time windows, rolling and process.
  compileWith(
    (s) =>
      byKey(s)
        .window(CountWindow.of(3))
        .reduce((a) => a, { name: "count" }),
    false,
  );
  compileWith(
    (s) =>
      byKey(s)
        .window(TumblingWindow.of(1_000).inProcessingTime())
        .reduce((a) => a, { name: "proc-time" }),
    false,
  );
  compileWith((s) => byKey(s).reduce((a) => a, { name: "rolling" }), false);
  // A Kafka source's record timestamps serve, taken as monotonous per partition.
  const { plan } = definePipeline("kafka-time", (env) => {
    env
      .fromSource(KafkaSource.topic<Ev>("events"), { name: "in" })
      .keyBy((e) => e.k, { name: "by-k" })
      .window(TumblingWindow.of(1_000))
      .reduce((a) => a, { name: "w" })
      .sink(KafkaSink.topic("out"), { name: "out" });
  }).compile();
  assert.deepEqual(plan.nodes.find((n) => n.id === "w")!.eventTime, [{ outOfOrdernessMs: 0, idlenessMs: null }]);
});

test("keyBy after a feedback edge is refused, naming the keyBy and the loop", () => {
  const looped = (inLoop: boolean): Pipeline =>
    definePipeline("keyed-loop", (env) => {
      const loop = env.feedback<Ev>("loop", { maxRounds: 3 });
      const step = env
        .fromSource(FileSource.jsonl<Ev>("/tmp/in.jsonl"), { name: "in" })
        .unionNamed({ name: "enter" }, loop)
        .map((e) => ({ ...e, v: e.v - 1 }), { name: "step" });
      if (inLoop) {
        // The keyed operator's output is what goes around.
        const summed = step.keyBy((e) => e.k, { name: "by-k" }).reduce((a, b) => ({ ...b, v: a.v + b.v }), { name: "sum" });
        summed.filter((e) => e.v > 0, { name: "again" }).fillFeedback(loop);
        summed.sink(FileSink.jsonl("/tmp/out.jsonl"), { name: "out" });
      } else {
        step.filter((e) => e.v > 0, { name: "again" }).fillFeedback(loop);
        step
          .keyBy((e) => e.k, { name: "by-k" })
          .reduce((a, b) => ({ ...b, v: a.v + b.v }), { name: "sum" })
          .sink(FileSink.jsonl("/tmp/out.jsonl"), { name: "out" });
      }
    });
  for (const inLoop of [false, true]) {
    assert.throws(
      () => looped(inLoop).compile(),
      definitionError(
        /^pipeline "keyed-loop": keyBy "by-k" reads records that went around feedback loop "loop"; keyed operators after a feedback edge are not supported$/,
      ),
      `keyBy ${inLoop ? "inside" : "after"} the loop`,
    );
  }
});

test("intervalJoin bounds: lower above upper, or not whole ms, is refused naming the join; lower == upper is fine", () => {
  const join = (lower: number, upper: number) =>
    compileWith((s) =>
      byKey(s)
        .intervalJoin(byKey(s, "by-k2"))
        .between(lower, upper)
        .process((a, b, ctx) => ctx.emit(a.v + b.v), { name: "near" }),
    );
  assert.throws(() => join(10, 5), definitionError(/^interval join "near": between\(10, 5\): the lower bound is above the upper bound$/));
  assert.throws(() => join(-1.5, 5), definitionError(/^interval join "near": between\(-1\.5, 5\): the bounds must be whole numbers of ms$/));
  assert.throws(() => join(0, Number.NaN), definitionError(/^interval join "near": between\(0, NaN\): the bounds must be whole numbers of ms$/));
  const node = join(-3, -3).nodes.find((n) => n.id === "near")!;
  assert.deepEqual(node.keyed, { op: "intervalJoin", lowerMs: -3, upperMs: -3 });
});

test("a session-window aggregate without merge() is refused, naming the operator; with merge(), or a reduce, it compiles", () => {
  assert.throws(
    () => compileWith((s) => byKey(s).window(SessionWindow.withGap(1_000)).aggregate(counter(false), { name: "per-session" })),
    definitionError(/^window aggregate "per-session": session windows merge, so the AggregateFunction needs merge\(\)$/),
  );
  assert.throws(
    () =>
      compileWith((s) =>
        byKey(s)
          .window(SessionWindow.withGap(1_000))
          .aggregate(counter(false), (k, w, n) => ({ k, w, n }), { uid: "per-session-v2" }),
      ),
    definitionError(/^window aggregate "per-session-v2": session windows merge/),
  );
  // Without a uid or name, the missing uid is the error (it comes first).
  assert.throws(
    () => compileWith((s) => byKey(s).window(SessionWindow.withGap(1_000)).aggregate(counter(false))),
    definitionError(/stateful operator #\d+ \(window\) needs a uid or a name/),
  );
  compileWith((s) => byKey(s).window(SessionWindow.withGap(1_000)).aggregate(counter(true), { name: "per-session" }));
  compileWith((s) =>
    byKey(s)
      .window(SessionWindow.withGap(1_000))
      .reduce((a) => a, { name: "per-session" }),
  );
  // Other windows never merge, so they do not need it.
  compileWith((s) => byKey(s).window(TumblingWindow.of(1_000)).aggregate(counter(false), { name: "per-window" }));
});

test("Duration helpers give milliseconds; a bad duration is refused where it is used, naming the use", () => {
  assert.equal(Duration.ofMillis(250).toMillis(), 250);
  assert.equal(Duration.ofSeconds(1.5).toMillis(), 1_500);
  assert.equal(Duration.ofMinutes(5).toMillis(), 300_000);
  assert.equal(Duration.ofHours(2).toMillis(), 7_200_000);
  // Durations and plain ms are interchangeable everywhere.
  assert.deepEqual(SlidingWindow.of(Duration.ofMinutes(5), Duration.ofMinutes(1)).spec, SlidingWindow.of(300_000, 60_000).spec);
  assert.deepEqual(TumblingWindow.of(Duration.ofHours(1), Duration.ofMinutes(90)).spec, {
    kind: "tumbling",
    sizeMs: 3_600_000,
    offsetMs: 1_800_000,
    time: "event",
  });
  assert.deepEqual(WatermarkStrategy.forBoundedOutOfOrderness(Duration.ofSeconds(2)).withIdleness(Duration.ofMinutes(1)).spec, {
    outOfOrdernessMs: 2_000,
    idlenessMs: 60_000,
  });
  assert.deepEqual(WatermarkStrategy.forMonotonousTimestamps().spec, { outOfOrdernessMs: 0, idlenessMs: null });
  // A part of a millisecond, a negative or a non-finite duration.
  assert.throws(
    () => TumblingWindow.of(Duration.ofSeconds(0.0005)),
    definitionError(/^TumblingWindow\.of: the size must be a whole number of milliseconds >= 1, got 0\.5$/),
  );
  assert.throws(() => TumblingWindow.of(Duration.ofMillis(Number.NaN)), definitionError(/got NaN$/));
  assert.throws(
    () => WatermarkStrategy.forBoundedOutOfOrderness(Duration.ofMillis(-1)),
    definitionError(/^forBoundedOutOfOrderness: the bound must be a whole number of milliseconds >= 0, got -1$/),
  );
  assert.throws(() => WatermarkStrategy.forMonotonousTimestamps().withIdleness(0), definitionError(/^withIdleness: the timeout must be .* >= 1, got 0$/));
  assert.throws(
    () =>
      compileWith((s) =>
        byKey(s)
          .window(TumblingWindow.of(1_000))
          .allowedLateness(Duration.ofSeconds(-1))
          .reduce((a) => a, { name: "w" }),
      ),
    definitionError(/^allowedLateness must be a whole number of milliseconds >= 0, got -1000$/),
  );
});

/** in -> timestamps -> by-k ==> counts (tumbling aggregate) -> fmt -> positive -> out. */
const windowed = (fusion: boolean): PhysicalPlan =>
  definePipeline("keyed-shape", (env) => {
    env
      .fromSource(FileSource.jsonl<Ev>("/tmp/in.jsonl"), { name: "in" })
      .assignTimestampsAndWatermarks(
        WatermarkStrategy.forBoundedOutOfOrderness<Ev>(2_000).withTimestampAssigner((e) => e.ts),
        { name: "timestamps" },
      )
      .keyBy((e) => e.k, { name: "by-k" })
      .window(TumblingWindow.of(Duration.ofSeconds(10)))
      .aggregate(counter(false), (k, w, n) => ({ k, start: w.start, n }), { name: "counts", uid: "counts-v1" })
      .map((r) => JSON.stringify(r), { name: "fmt" })
      .filter((s) => s.length > 0, { name: "positive" })
      .sink(FileSink.jsonl("/tmp/out.jsonl"), { name: "out" });
  }).compile({ parallelism: 2, fusion }).plan;

test("keyBy cuts the chain with a repartition edge; the stateless chain after the keyed operator fuses into its stage", () => {
  const plan = windowed(true);
  assert.deepEqual(
    plan.stages.map((s) => [s.name, s.operators, s.source, s.keyed]),
    [
      ["in+timestamps+by-k", ["in", "timestamps", "by-k"], true, undefined],
      ["counts+fmt+positive+out", ["counts-v1", "fmt", "positive", "out"], false, true],
    ],
  );
  assert.deepEqual(plan.edges, [{ id: "s1", fromStage: "s0", fromOperator: "by-k", tag: null, toStage: "s1", toOperator: "counts-v1", keyed: true }]);
  assert.deepEqual(plan.cuts, [{ from: "by-k", to: "counts", reason: 'keyBy "by-k": records are repartitioned by key group into stateful "counts"' }]);
  assert.equal(plan.keyGroups, DEFAULT_KEY_GROUPS);
  const counts = plan.nodes.find((n) => n.id === "counts-v1")!;
  assert.equal(counts.kind, "keyed");
  assert.deepEqual(counts.keyed, {
    op: "window",
    window: { kind: "tumbling", sizeMs: 10_000, offsetMs: 0, time: "event" },
    apply: "aggregate",
    allowedLatenessMs: 0,
    lateTag: null,
    withResultFn: true,
  });
  assert.deepEqual(counts.eventTime, [{ outOfOrdernessMs: 2_000, idlenessMs: null }]);
  // Fusion off: every operator its own stage, but the keyBy stays with what feeds it (the key and the time are taken there).
  const unfused = windowed(false);
  assert.deepEqual(
    unfused.stages.map((s) => s.name),
    ["in", "timestamps+by-k", "counts", "fmt", "positive", "out"],
  );
  assert.deepEqual(
    unfused.edges.filter((e) => e.keyed).map((e) => [e.fromOperator, e.toOperator]),
    [["by-k", "counts-v1"]],
  );
  assert.deepEqual(
    unfused.stages.filter((s) => s.keyed).map((s) => s.name),
    ["counts"],
  );
});

test("two keyed operators on one keyBy, and a window join of two sources, each read a repartition edge per input", () => {
  const fanOut = compileWith((s) => {
    const keyed = byKey(s);
    const sums = keyed.reduce((a, b) => ({ ...b, v: a.v + b.v }), { name: "sums" });
    const counts = keyed.window(CountWindow.of(2)).reduce((a) => a, { name: "pairs" });
    return sums.unionNamed({ name: "both" }, counts);
  });
  assert.deepEqual(
    fanOut.edges.filter((e) => e.keyed).map((e) => [e.fromOperator, e.toOperator]),
    [
      ["by-k", "sums"],
      ["by-k", "pairs"],
    ],
  );
  assert.deepEqual(
    fanOut.stages.map((s) => [s.name, s.keyed === true]),
    [
      ["in+timestamps+by-k", false],
      ["sums", true],
      ["pairs", true],
      ["both+out", false],
    ],
  );
  const { plan } = definePipeline("keyed-join", (env) => {
    const timed = (name: string) =>
      env.fromSource(FileSource.jsonl<Ev>(`/tmp/${name}.jsonl`), { name }).assignTimestampsAndWatermarks(
        WatermarkStrategy.forMonotonousTimestamps<Ev>().withTimestampAssigner((e) => e.ts),
        { name: `${name}-ts` },
      );
    timed("left")
      .join(timed("right"))
      .where((e) => e.k)
      .equalTo((e) => e.k)
      .window(TumblingWindow.of(1_000))
      .apply((a, b) => a.v * b.v, { name: "pairs" })
      .sink(FileSink.jsonl("/tmp/out.jsonl"), { name: "out" });
  }).compile({ parallelism: 2 });
  const into = plan.edges.filter((e) => e.toOperator === "pairs");
  assert.deepEqual(
    into.map((e) => [e.fromStage, e.toInput ?? 0, e.keyed]),
    [
      ["s0", 0, true],
      ["s1", 1, true],
    ],
  );
  assert.deepEqual(
    plan.stages.map((s) => [s.source, s.keyed === true, s.operators.length]),
    [
      [true, false, 3],
      [true, false, 3],
      [false, true, 2],
    ],
  );
  assert.deepEqual(plan.nodes.find((n) => n.id === "pairs")!.eventTime, [
    { outOfOrdernessMs: 0, idlenessMs: null },
    { outOfOrdernessMs: 0, idlenessMs: null },
  ]);
});

test("a stateless plan carries nothing of keyed state: no key groups, no keyed stage or edge, no event time", () => {
  for (const fusion of [true, false]) {
    const { plan, graph } = wordcount.compile({ parallelism: 2, fusion });
    assert.equal("keyGroups" in plan, false);
    assert.equal("keyGroups" in graph, false);
    assert.ok(plan.edges.length > 0 || fusion, "unfused wordcount has edges to check");
    for (const s of plan.stages) assert.equal("keyed" in s, false, s.name);
    for (const e of plan.edges) assert.equal("keyed" in e, false, e.id);
    for (const n of plan.nodes) assert.ok(!("keyed" in n) && !("eventTime" in n) && !("watermark" in n), n.name);
    assert.doesNotMatch(renderText(plan), /repartition|holds state|stateful/);
  }
});

test("the plan hash follows what the state depends on: the window, the uid; and not the run", () => {
  const hashOf = (size: number, uid: string) =>
    compileWith((s) =>
      byKey(s)
        .window(TumblingWindow.of(size))
        .reduce((a) => a, { name: "w", uid }),
    ).hash;
  assert.equal(hashOf(1_000, "w-v1"), hashOf(1_000, "w-v1"));
  assert.notEqual(hashOf(1_000, "w-v1"), hashOf(2_000, "w-v1"));
  assert.notEqual(hashOf(1_000, "w-v1"), hashOf(1_000, "w-v2"));
});

test("renderText shows keyBy edges as repartitions and which operators hold state", () => {
  const text = renderText(windowed(true));
  assert.match(text, /by-k -> counts \(window tumbling 10000 ms, event time -> aggregate, holds state \(uid counts-v1\)\)/);
  assert.match(text, /timestamps \(timestamps, watermark bound 2000 ms\)/);
  assert.match(text, /s0 -> s1 \(repartition by key: 128 key groups; edge files by key-group range, or a Kafka repartition topic\)/);
  assert.match(text, /s1 stage:counts\+fmt\+positive\+out {2}\[4 operator\(s\), parallelism 2, stateful: one activity per key-group range/);
  assert.match(text, /by-k -\/-> counts: keyBy "by-k": records are repartitioned by key group into stateful "counts"/);
  const joins = renderText(
    compileWith((s) =>
      byKey(s)
        .intervalJoin(byKey(s, "by-k2"))
        .between(-5, 5)
        .process((a, b, ctx) => ctx.emit(a.v + b.v), { name: "near" }),
    ),
  );
  assert.match(joins, /near \(interval join \[-5, 5\] ms, holds state \(uid near\)\)/);
  const sessions = renderText(
    compileWith((s) =>
      byKey(s)
        .window(SessionWindow.withGap(Duration.ofSeconds(5)))
        .allowedLateness(1_000)
        .reduce((a) => a, { name: "sessions" }),
    ),
  );
  assert.match(sessions, /sessions \(window session gap 5000 ms, event time -> reduce, lateness 1000 ms, holds state \(uid sessions\)\)/);
});

test("a streaming job refuses a keyed operator whose parallelism differs from the job's, naming it", () => {
  const p = definePipeline("kp-stream-par", (env) =>
    env
      .fromSource(KafkaSource.topic<{ k: string }>("in"), { name: "in" })
      .keyBy((e) => e.k)
      .reduce((a) => a, { name: "r", parallelism: 3 })
      .sink(KafkaSink.topic("out"), { name: "out" }),
  );
  assert.throws(() => p.compile({ parallelism: 2 }), /keyed operator "r" has parallelism 3 but the streaming job 2/);
  assert.equal(
    definePipeline("kp-stream-par-ok", (env) =>
      env
        .fromSource(KafkaSource.topic<{ k: string }>("in"), { name: "in" })
        .keyBy((e) => e.k)
        .reduce((a) => a, { name: "r" })
        .sink(KafkaSink.topic("out"), { name: "out" }),
    )
      .compile({ parallelism: 2 })
      .plan.stages.find((s) => s.keyed)!.parallelism,
    2,
  );
});

/** A Kafka job whose keyBy is source-partitioned (or not), two windows on it, each to its own topic. */
function sourceKeyed(sourcePartitioned: boolean, options: { fusion?: boolean; parallelism?: number } = {}): PhysicalPlan {
  return definePipeline("source-keyed", (env) => {
    const keyed = env
      .fromSource(KafkaSource.topic<Ev>("events"), { name: "in" })
      .assignTimestampsAndWatermarks(
        WatermarkStrategy.forBoundedOutOfOrderness<Ev>(1_000).withTimestampAssigner((e) => e.ts),
        { name: "timestamps" },
      )
      .keyBy((e) => e.k, { name: "by-k", sourcePartitioned });
    keyed
      .window(TumblingWindow.of(10_000))
      .aggregate(counter(false), { name: "counts", ...(options.parallelism ? { parallelism: options.parallelism } : {}) })
      .sink(KafkaSink.topic("counts"), { name: "counts-out" });
    keyed.window(SlidingWindow.of(30_000, 10_000)).aggregate(counter(false), { name: "sliding" }).sink(KafkaSink.topic("sliding"), { name: "sliding-out" });
  }).compile({ parallelism: 2, fusion: options.fusion ?? true }).plan;
}

test("a source-partitioned keyBy in a Kafka source's stage: its keyed operators fuse into that stage, with changelogs and no repartition", () => {
  const plan = sourceKeyed(true);
  assert.deepEqual(
    plan.stages.map((s) => [s.name, s.source, s.keyed, s.keyedLocal]),
    [["in+timestamps+by-k+counts+counts-out+sliding+sliding-out", true, undefined, ["counts", "sliding"]]],
  );
  assert.deepEqual(plan.edges, []);
  assert.equal(plan.nodes.find((n) => n.id === "by-k")!.sourcePartitioned, true);
  assert.deepEqual(keyedTopicsOf(plan, "j1"), [
    { uid: "counts", repartition: null, changelog: "sage.source-keyed.j1.counts.changelog", partitions: 2 },
    { uid: "sliding", repartition: null, changelog: "sage.source-keyed.j1.sliding.changelog", partitions: 2 },
  ]);
  assert.equal(entryTopicsOf(plan, "j1").get("events"), "s0");
  assert.match(renderText(plan), /no repartition: the keyBy is source-partitioned; "counts", "sliding" hold state per partition workflow/);
  // Without the flag the same job repartitions, once per keyed operator, and its plan hash differs.
  const repartitioned = sourceKeyed(false);
  assert.deepEqual(
    keyedTopicsOf(repartitioned, "j1").map((t) => t.repartition),
    ["sage.source-keyed.j1.counts.repartition", "sage.source-keyed.j1.sliding.repartition"],
  );
  assert.notEqual(plan.hash, repartitioned.hash);
});

test("sourcePartitioned is not used where records are not partitioned by key: a file source, an unfused chain; the cut says why", () => {
  const bounded = definePipeline("bounded-keyed", (env) => {
    env
      .fromSource(FileSource.jsonl<Ev>("/tmp/in.jsonl"), { name: "in" })
      .assignTimestampsAndWatermarks(
        WatermarkStrategy.forMonotonousTimestamps<Ev>().withTimestampAssigner((e) => e.ts),
        { name: "timestamps" },
      )
      .keyBy((e) => e.k, { name: "by-k", sourcePartitioned: true })
      .reduce((a, b) => ({ ...b, v: a.v + b.v }), { name: "sums" })
      .sink(FileSink.jsonl("/tmp/out.jsonl"), { name: "out" });
  }).compile({ parallelism: 2, fusion: true }).plan;
  assert.equal(bounded.stages.filter((s) => s.keyed).length, 1);
  assert.match(bounded.cuts[0]!.reason, /sourcePartitioned is not used: keyBy "by-k" does not run in a Kafka source's stage/);
  // Another parallelism is not fused (and a streaming job refuses it anyway).
  assert.throws(() => sourceKeyed(true, { parallelism: 3 }), /keyed operator "counts" has parallelism 3 but the streaming job 2/);
  const unfused = sourceKeyed(true, { fusion: false });
  assert.equal(
    unfused.stages.some((s) => s.keyedLocal),
    false,
  );
  assert.match(unfused.cuts.find((c) => c.to === "counts")!.reason, /does not run in a Kafka source's stage/);
});
