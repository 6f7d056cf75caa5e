/** Unit tests of the planner on graphs: routers, unions, connected streams and feedback loops. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { definePipeline } from "../../core/api/pipeline.js";
import { FileSink } from "../../core/api/connectors.js";
import { OutputTag } from "../../core/api/context.js";
import { PipelineDefinitionError } from "../../core/errors.js";
import { edgeKey, type PhysicalPlan } from "../../core/plan/physical.js";
import { renderDot, renderMermaid, renderText } from "../../core/plan/render.js";
import agentRouter from "../../examples/agent-router/keyword-pipeline.js";

const definitionError = (pattern: RegExp) => (err: unknown) => err instanceof PipelineDefinitionError && pattern.test(err.message);

/** Stage names, in plan order. */
const stageNames = (plan: PhysicalPlan) => plan.stages.map((s) => s.name);

test("a router, its branches and their union fuse with the source into one stage", () => {
  const { plan } = agentRouter.compile({ parallelism: 2 });
  assert.deepEqual(stageNames(plan), ["messages+intent-classifier+intent-router+qa+safety+cmd+chat+intent-router-union+response-aggregator"]);
  assert.deepEqual(plan.edges, []);
  const router = plan.nodes.find((n) => n.id === "intent-router")!;
  assert.equal(router.kind, "route");
  assert.deepEqual(router.route, { labels: ["question", "command", "conversation"], otherwise: false });
  assert.deepEqual(plan.nodes.find((n) => n.id === "qa")!.inputs, [{ from: "intent-router", tag: "question" }]);
  const union = plan.nodes.find((n) => n.id === "intent-router-union")!;
  assert.equal(union.kind, "union");
  assert.deepEqual(
    union.inputs.map((i) => i.from),
    ["qa", "cmd", "chat"],
  );
});

test("unfused, every branch and the union cross history, each edge with a distinct key and the input it feeds", () => {
  const { plan } = agentRouter.compile({ parallelism: 2, fusion: false });
  assert.equal(plan.stages.length, 9);
  const router = plan.stages.find((s) => s.name === "intent-router")!;
  assert.deepEqual(
    plan.edges.filter((e) => e.fromStage === router.id).map((e) => e.tag),
    ["question", "command", "conversation"],
  );
  const union = plan.stages.find((s) => s.name === "intent-router-union")!;
  const into = plan.edges.filter((e) => e.toStage === union.id);
  assert.deepEqual(
    into.map((e) => e.toInput ?? 0),
    [0, 1, 2],
  );
  assert.equal(new Set(into.map(edgeKey)).size, 3, `edge keys into the union: ${into.map(edgeKey).join(", ")}`);
});

const twoSources = (fusion: boolean, parallelism?: number) =>
  definePipeline("two-sources", (env) => {
    const a = env.fromCollection([1, 2, 3], { name: "a" });
    const b = env.fromCollection([4, 5], { name: "b" }).map((x) => x * 10, { name: "b10" });
    a.unionNamed({ name: "ab", ...(parallelism ? { parallelism } : {}) }, b)
      .map((x) => x + 1, { name: "inc" })
      .sink(FileSink.jsonl("/tmp/x"), { name: "out" });
  }).compile({ parallelism: 2, fusion });

test("a union of two sources is cut (its inputs come from different stages) and the plan says why", () => {
  const { plan } = twoSources(true);
  assert.deepEqual(stageNames(plan), ["a", "b+b10", "ab+inc+out"]);
  assert.deepEqual(
    plan.stages.map((s) => s.source),
    [true, true, false],
  );
  assert.deepEqual(
    plan.cuts.map((c) => [c.from, c.to, c.reason]),
    [
      ["a", "ab", '"ab" joins inputs from different stages'],
      ["b10", "ab", '"ab" joins inputs from different stages'],
    ],
  );
  assert.deepEqual(
    plan.edges.map((e) => ({ from: e.fromStage, to: e.toStage, toInput: e.toInput ?? 0, key: edgeKey(e) })),
    [
      { from: "s0", to: "s2", toInput: 0, key: "s2" },
      { from: "s1", to: "s2", toInput: 1, key: "s2~1" },
    ],
  );
  assert.match(renderText(plan), /a -\/-> ab: "ab" joins inputs from different stages/);
});

test("a multi-input operator fuses when its inputs share a stage, and is cut when its parallelism differs", () => {
  const odd = new OutputTag<number>("odd");
  const build = (parallelism?: number) =>
    definePipeline("connected", (env) => {
      const split = env.fromCollection([1, 2, 3], { name: "nums" }).process<number>((n, ctx) => (n % 2 ? ctx.output(odd, n) : ctx.emit(n)), { name: "split" });
      split
        .connect(split.getSideOutput(odd))
        .coMap(
          (even) => `even ${even}`,
          (o) => `odd ${o}`,
          { name: "join", ...(parallelism ? { parallelism } : {}) },
        )
        .sink(FileSink.jsonl("/tmp/x"), { name: "out", ...(parallelism ? { parallelism } : {}) });
    }).compile({ parallelism: 2 });
  assert.deepEqual(stageNames(build().plan), ["nums+split+join+out"]);
  const cut = build(4).plan;
  assert.deepEqual(stageNames(cut), ["nums+split", "join+out"]);
  assert.match(cut.cuts[0]!.reason, /parallelism changes from 2 \("split"\) to 4 \("join"\)/);
  assert.deepEqual(
    cut.edges.map((e) => [e.tag, e.toInput ?? 0, edgeKey(e)]),
    [
      [null, 0, "s1"],
      ["odd", 1, "s1~1"],
    ],
  );
  assert.deepEqual(stageNames(twoSources(true, 3).plan), ["a", "b+b10", "ab", "inc+out"]);
});

const again = new OutputTag<number>("again");
/** seeds -> enter (union with the feedback `loop`) -> halve -> check: small to `out`, large back into `loop`. */
const loopPipeline = definePipeline("loop", (env) => {
  const loop = env.feedback<number>("loop", { maxRounds: 5 });
  const checked = env
    .fromCollection([1, 8, 100], { name: "seeds" })
    .unionNamed({ name: "enter" }, loop)
    .map((x) => x / 2, { name: "halve" })
    .process<number>((x, ctx) => (x < 1 ? ctx.emit(x) : ctx.output(again, x)), { name: "check" });
  checked.sink(FileSink.jsonl("/tmp/x"), { name: "out" });
  checked.getSideOutput(again).fillFeedback(loop);
});

test("a feedback edge is marked, always crosses history, and is rendered as feedback", () => {
  for (const fusion of [true, false]) {
    const { plan } = loopPipeline.compile({ parallelism: 2, fusion });
    const back = plan.edges.filter((e) => e.feedback);
    assert.equal(back.length, 1, `fusion ${fusion}`);
    assert.equal(back[0]!.fromOperator, "check");
    assert.equal(back[0]!.tag, "again");
    assert.equal(back[0]!.toOperator, "loop");
    assert.notEqual(back[0]!.fromStage, back[0]!.toStage);
    const loopStage = plan.stages.find((s) => s.operators.includes("loop"))!;
    assert.equal(loopStage.operators[0], "loop");
    assert.equal(loopStage.source, false);
    assert.deepEqual(plan.nodes.find((n) => n.id === "loop")!.inputs, [{ from: "check", tag: "again", feedback: true }]);
    assert.ok(plan.cuts.some((c) => c.from === "check" && c.to === "loop" && c.reason === 'feedback into "loop" (at most 5 rounds)'));
    // Forward edges are never marked.
    assert.ok(plan.edges.filter((e) => !e.feedback).every((e) => e.feedback === undefined));
  }
  const { plan } = loopPipeline.compile({ parallelism: 2 });
  assert.deepEqual(stageNames(plan), ["loop", "seeds", "enter+halve+check+out"]);
  assert.match(renderText(plan), /s2 -> s0 \[again\] \(feedback\)/);
  assert.match(renderText(plan), /loop \(feedback, at most 5 rounds\)/);
  assert.match(renderMermaid(plan), /check -\.->\|again, feedback\| loop/);
  assert.match(renderDot(plan), /"check" -> "loop" \[style=dashed, label="again, feedback", constraint=false\]/);
});

test("a loop body that fuses with its feedback node sends its records around through history all the same", () => {
  const { plan } = definePipeline("tight-loop", (env) => {
    const loop = env.feedback<number>("loop", { maxRounds: 3 });
    const step = loop.process<number>((x, ctx) => (x > 1 ? ctx.output(again, x - 1) : ctx.emit(x)), { name: "step" });
    step.getSideOutput(again).fillFeedback(loop);
    step.sink(FileSink.jsonl("/tmp/x"), { name: "out" });
    env.fromCollection([5], { name: "seeds" }).fillFeedback(loop);
  }).compile({ parallelism: 2 });
  assert.deepEqual(stageNames(plan), ["loop+step+out", "seeds"]);
  assert.deepEqual(
    plan.edges.map((e) => ({ from: e.fromStage, to: e.toStage, feedback: e.feedback, key: edgeKey(e) })),
    [
      { from: "s0", to: "s0", feedback: true, key: "s0" },
      { from: "s1", to: "s0", feedback: true, key: "s0~1" },
    ],
  );
});

/** nums -> square -> fan (broadcast) -> { all (sink), tens -> tenfold (sink) }; `tens` at parallelism `readers` when given. */
const fanned = (parallelism: number, fusion: boolean, readers?: number) =>
  definePipeline("fanned", (env) => {
    const fan = env
      .fromCollection([1, 2, 3], { name: "nums" })
      .map((n) => n * n, { name: "square" })
      .broadcast({ name: "fan" });
    fan.sink(FileSink.jsonl("/tmp/all"), { name: "all" });
    fan.map((n) => n * 10, { name: "tens", ...(readers ? { parallelism: readers } : {}) }).sink(FileSink.jsonl("/tmp/tenfold"), { name: "tenfold" });
  }).compile({ parallelism, fusion });

/** Each edge as from -> to operator, with its broadcast mark. */
const marks = (plan: PhysicalPlan) => plan.edges.map((e) => [`${e.fromOperator}->${e.toOperator}`, e.broadcast ?? false]);

test("a broadcast is cut from its readers of parallelism above 1, and only the edges leaving it are marked", () => {
  const { plan } = fanned(2, true);
  assert.deepEqual(stageNames(plan), ["nums+square+fan", "all", "tens+tenfold"]);
  assert.deepEqual(
    plan.cuts.map((c) => [c.from, c.to, c.reason]),
    [
      ["fan", "all", '"all" reads the broadcast "fan": each of its 2 instances gets every record'],
      ["fan", "tens", '"tens" reads the broadcast "fan": each of its 2 instances gets every record'],
    ],
  );
  assert.deepEqual(marks(plan), [
    ["fan->all", true],
    ["fan->tens", true],
  ]);
  assert.deepEqual(
    plan.stages.map((s) => s.parallelism),
    [2, 2, 2],
  );
});

test("a broadcast read at parallelism 1 fuses like a forward stream: one instance gets every record once", () => {
  const { plan } = fanned(1, true);
  assert.deepEqual(stageNames(plan), ["nums+square+fan+all+tens+tenfold"]);
  assert.deepEqual(plan.edges, []);
});

test("unfused or across a parallelism change, the edges after a broadcast's readers are plain forward edges", () => {
  assert.deepEqual(marks(fanned(2, false).plan), [
    ["nums->square", false],
    ["square->fan", false],
    ["fan->all", true],
    ["fan->tens", true],
    ["tens->tenfold", false],
  ]);
  const { plan } = fanned(1, true, 3);
  assert.deepEqual(stageNames(plan), ["nums+square+fan+all", "tens", "tenfold"]);
  assert.deepEqual(marks(plan), [
    ["fan->tens", true],
    ["tens->tenfold", false],
  ]);
  assert.equal(plan.cuts[0]!.reason, '"tens" reads the broadcast "fan": each of its 3 instances gets every record');
  assert.notEqual(plan.hash, fanned(1, true).plan.hash);
});

test("route definition errors: a label twice, no branch at all", () => {
  const withBranches = (labels: string[]) =>
    definePipeline("bad-route", (env) =>
      env
        .fromCollection([1], { name: "nums" })
        .route<number>(
          labels.map((l, i) => [l, (s) => s.map((x) => x, { name: `branch-${i}` })] as const),
          { name: "r", by: () => "a" },
        )
        .sink(FileSink.jsonl("/tmp/x"), { name: "out" }),
    ).compile();
  assert.throws(() => withBranches(["a", "b", "a"]), definitionError(/route "r" has a label twice: a, b, a/));
  assert.throws(() => withBranches([]), definitionError(/route "r" needs at least one branch/));
  assert.doesNotThrow(() => withBranches(["a", "b"]));
});

test("feedback definition errors: never filled, a bound below one round", () => {
  assert.throws(
    () =>
      definePipeline("unfilled", (env) => {
        const loop = env.feedback<number>("refine", { maxRounds: 3 });
        env.fromCollection([1], { name: "nums" }).union(loop).sink(FileSink.jsonl("/tmp/x"), { name: "out" });
      }).compile(),
    definitionError(/feedback "refine" is never filled: call stream\.fillFeedback/),
  );
  for (const maxRounds of [0, -1, 1.5]) {
    assert.throws(
      () => definePipeline("no-rounds", (env) => env.feedback<number>("refine", { maxRounds })).compile(),
      definitionError(new RegExp(`feedback "refine": maxRounds must be an integer >= 1, got ${maxRounds}`)),
    );
  }
});

test("the plan hash covers the graph: route labels, otherwise and the feedback bound change it", () => {
  const routed = (labels: string[], otherwise: boolean) =>
    definePipeline("routed", (env) =>
      env
        .fromCollection([1], { name: "nums" })
        .route<number>(
          labels.map((l) => [l, (s) => s.map((x) => x, { name: `to-${l}` })] as const),
          { name: "r", by: () => "a", ...(otherwise ? { otherwise: (s) => s.map((x) => x, { name: "rest" }) } : {}) },
        )
        .sink(FileSink.jsonl("/tmp/x"), { name: "out" }),
    ).compile().plan.hash;
  const base = routed(["a", "b"], false);
  assert.equal(routed(["a", "b"], false), base);
  assert.notEqual(routed(["a", "c"], false), base);
  assert.notEqual(routed(["a", "b"], true), base);
  const looped = (maxRounds: number) =>
    definePipeline("looped", (env) => {
      const loop = env.feedback<number>("loop", { maxRounds });
      const s = env
        .fromCollection([1], { name: "nums" })
        .union(loop)
        .map((x) => x, { name: "m" });
      s.sink(FileSink.jsonl("/tmp/x"), { name: "out" });
      s.filter(() => false, { name: "never" }).fillFeedback(loop);
    }).compile().plan.hash;
  assert.equal(looped(3), looped(3));
  assert.notEqual(looped(3), looped(4));
});

test("the plan holds no user code: routers carry their labels, the classifier stays in the worker's registry", () => {
  const { plan, functions } = agentRouter.compile({ parallelism: 2 });
  assert.deepEqual(JSON.parse(JSON.stringify(plan)), plan);
  assert.equal(typeof functions.get("intent-router"), "function");
  assert.equal(plan.nodes.find((n) => n.id === "intent-router")!.form, "lambda");
  assert.match(plan.nodes.find((n) => n.id === "intent-router")!.fnHash, /^[0-9a-f]{64}$/);
});
