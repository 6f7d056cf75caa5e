/** Window operators against the plain reference: every window type and function, lateness, late data. */
import { test } from "node:test";
import assert from "node:assert/strict";
import type { OutputTag } from "../../../core/api/context.js";
import type { AggregateFunction, WindowContext } from "../../../core/api/state.js";
import type { TimeWindow, WindowSpec } from "../../../core/api/windows.js";
import { InMemoryStateBackend } from "../../../activities/state/backend.js";
import { createKeyedOperator } from "../../../activities/state/create.js";
import { drive, generateEvents, keyedNode, type TestEvent } from "./harness.js";
import { referenceWindows, watermarksBefore, type RefFiring } from "./reference.js";

const reduce = (a: TestEvent, b: TestEvent): TestEvent => ({ k: a.k, n: a.n + b.n, ts: Math.max(a.ts, b.ts), s: `${a.s},${b.s}` });

interface Acc {
  count: number;
  sum: number;
  trail: string[];
}

/** An aggregate as a class (methods on the prototype): count, sum, and the order records came in. */
class Trail implements AggregateFunction<TestEvent, Acc, Acc> {
  createAccumulator(): Acc {
    return { count: 0, sum: 0, trail: [] };
  }
  add(e: TestEvent, acc: Acc): Acc {
    acc.count++;
    acc.sum += e.n;
    acc.trail.push(e.s);
    return acc;
  }
  getResult(acc: Acc): Acc {
    return acc;
  }
  merge(a: Acc, b: Acc): Acc {
    return { count: a.count + b.count, sum: a.sum + b.sum, trail: [...a.trail, ...b.trail] };
  }
}

const SPECS: Array<[string, WindowSpec]> = [
  ["tumbling", { kind: "tumbling", sizeMs: 100, offsetMs: 0, time: "event" }],
  ["tumbling with offset", { kind: "tumbling", sizeMs: 100, offsetMs: 30, time: "event" }],
  ["sliding", { kind: "sliding", sizeMs: 150, slideMs: 50, offsetMs: 20, time: "event" }],
  ["session", { kind: "session", gapMs: 40, time: "event" }],
  ["count tumbling", { kind: "count", size: 4, slide: 4 }],
  ["count sliding", { kind: "count", size: 5, slide: 2 }],
];

const EVENTS = generateEvents(16, 1500, { keys: 5, step: 10, jitter: 40, lateShare: 0.06, lag: 400 });
const WATERMARKS = watermarksBefore(EVENTS, 50);

/** What the engine must emit for one reference firing. */
function expected(apply: "reduce" | "aggregate" | "process", f: RefFiring<TestEvent>, withResult: boolean): unknown {
  const els = f.elements;
  if (apply === "reduce") return els.slice(1).reduce(reduce, els[0]!);
  if (apply === "process") return { key: JSON.parse(f.key), window: f.window, ns: els.map((e) => e.n) };
  const acc = { count: els.length, sum: els.reduce((s, e) => s + e.n, 0), trail: els.map((e) => e.s) };
  return withResult ? { key: JSON.parse(f.key), window: f.window, acc } : acc;
}

function functionsFor(apply: "reduce" | "aggregate" | "process", withResult: boolean): { main: unknown; result?: unknown } {
  if (apply === "reduce") return { main: { reduce } };
  if (apply === "aggregate")
    return withResult ? { main: new Trail(), result: (key: unknown, window: TimeWindow, acc: Acc) => ({ key, window, acc }) } : { main: new Trail() };
  return {
    main: (key: unknown, elements: TestEvent[], ctx: WindowContext<unknown>) => {
      ctx.emit({ key, window: ctx.window, ns: elements.map((e) => e.n) });
    },
  };
}

for (const [name, spec] of SPECS) {
  for (const apply of ["reduce", "aggregate", "process"] as const) {
    for (const lateness of spec.kind === "count" ? [0] : [0, 100]) {
      const withResult = apply === "aggregate" && lateness === 0;
      test(`${name} window ${apply}${withResult ? " with a result function" : ""}, allowed lateness ${lateness}: equals the reference`, async () => {
        const lateTag = lateness > 0 ? "late" : null;
        const node = keyedNode({ op: "window", window: spec, apply, allowedLatenessMs: lateness, lateTag, withResultFn: withResult });
        const backend = new InMemoryStateBackend();
        const op = createKeyedOperator(node, functionsFor(apply, withResult), backend, () => 0);
        const out = await drive(op, backend, EVENTS, WATERMARKS);
        const ref = referenceWindows(EVENTS, WATERMARKS, spec, lateness);
        assert.ok(ref.firings.length > 50, `the data gives windows (${ref.firings.length})`);
        const refires = ref.firings.length - new Set(ref.firings.map((f) => `${f.key}|${f.window.start}|${f.window.end}`)).size;
        if (lateness > 0) assert.ok(refires >= 3, `late-but-allowed records fire windows again (${refires})`);
        const main = out.filter((e) => e.tag === null);
        assert.deepEqual(
          main.map((e) => e.timestamp),
          ref.firings.map((f) => f.timestamp),
        );
        assert.deepEqual(
          main.map((e) => e.value),
          ref.firings.map((f) => expected(apply, f, withResult)),
        );
        const late = out.filter((e) => e.tag === "late").map((e) => e.value);
        if (spec.kind !== "count") assert.ok(ref.late.length > 10, `the data has late records (${ref.late.length})`);
        assert.deepEqual(late, lateTag === null ? [] : ref.late.map((r) => r.value));
        assert.equal(op.lateSide, lateTag === null ? 0 : ref.late.length);
        assert.equal(op.lateDropped, lateTag === null ? ref.late.length : 0);
        if (spec.kind !== "count") assert.deepEqual(backend.size(), { entries: 0, bytes: 0, timers: 0 }, "every window is purged at the end");
      });
    }
  }
}

test("allowed lateness: a late-but-allowed record fires its window again at once; records behind lateness go to the tag", async () => {
  const spec: WindowSpec = { kind: "tumbling", sizeMs: 10, offsetMs: 0, time: "event" };
  const node = keyedNode({ op: "window", window: spec, apply: "reduce", allowedLatenessMs: 5, lateTag: "late", withResultFn: false });
  const backend = new InMemoryStateBackend();
  const op = createKeyedOperator(node, { main: (a: number, b: number) => a + b }, backend, () => 0);
  const key = JSON.stringify("a");
  const at = (value: number, timestamp: number) => ({ key, value, timestamp });
  // Window [0,10) fires at watermark 9 with 1+2; 4 (ts 3) arrives at watermark 12 (< 9 + 5): fires 7; 8 at watermark 14 is too late.
  const records = [at(1, 1), at(2, 5), at(100, 20), at(4, 3), at(8, 2)];
  const out = await drive(op, backend, records, [-Infinity, -Infinity, 9, 12, 14]);
  assert.deepEqual(out, [
    { value: 3, timestamp: 9, tag: null },
    { value: 7, timestamp: 9, tag: null },
    { value: 8, timestamp: undefined, tag: "late" },
    { value: 100, timestamp: 29, tag: null },
  ]);
  assert.equal(op.lateSide, 1);
});

test("windows of the same end fire in key order, earlier ends first", async () => {
  const spec: WindowSpec = { kind: "tumbling", sizeMs: 10, offsetMs: 0, time: "event" };
  const node = keyedNode({ op: "window", window: spec, apply: "reduce", allowedLatenessMs: 0, lateTag: null, withResultFn: false });
  const backend = new InMemoryStateBackend();
  const op = createKeyedOperator(node, { main: (a: string, b: string) => a + b }, backend, () => 0);
  const records = ["c", "a", "b"].flatMap((k, i) => [
    { key: JSON.stringify(k), value: `${k}2`, timestamp: 15 + i },
    { key: JSON.stringify(k), value: `${k}1`, timestamp: 5 + i },
  ]);
  const out = await drive(
    op,
    backend,
    records,
    records.map(() => -Infinity),
  );
  assert.deepEqual(
    out.map((e) => e.value),
    ["a1", "b1", "c1", "a2", "b2", "c2"],
  );
});

test("processing-time windows take the clock as the time and fire on advanceProcessingTime", async () => {
  let now = 1_000;
  const spec: WindowSpec = { kind: "tumbling", sizeMs: 100, offsetMs: 0, time: "processing" };
  const node = keyedNode({ op: "window", window: spec, apply: "aggregate", allowedLatenessMs: 0, lateTag: null, withResultFn: false });
  const backend = new InMemoryStateBackend();
  const count = { createAccumulator: () => 0, add: (_: unknown, acc: number) => acc + 1, getResult: (acc: number) => acc };
  const op = createKeyedOperator(node, { main: count }, backend, () => now);
  const out: Array<{ value: unknown; timestamp: number | undefined }> = [];
  const o = { emit: (value: unknown, timestamp?: number) => out.push({ value, timestamp }), side: () => assert.fail("no side output") };
  const ctx = (await import("./harness.js")).RECORD_CONTEXT;
  const el = (k: string) => ({ key: JSON.stringify(k), keyGroup: 0, value: {}, timestamp: 5, side: 0 });
  await op.element(el("a"), ctx, o);
  now = 1_050;
  await op.element(el("a"), ctx, o);
  await op.element(el("b"), ctx, o);
  assert.equal(op.nextProcessingTimer(), 1_099);
  await op.advanceWatermark(Infinity, ctx, o);
  assert.deepEqual(out, [], "the watermark does not fire processing-time windows");
  await op.advanceProcessingTime(1_098, ctx, o);
  assert.deepEqual(out, []);
  now = 1_120;
  await op.element(el("a"), ctx, o);
  await op.advanceProcessingTime(1_099, ctx, o);
  assert.deepEqual(out, [
    { value: 2, timestamp: 1_099 },
    { value: 1, timestamp: 1_099 },
  ]);
  assert.equal(op.nextProcessingTimer(), 1_199);
});

test("an async window process function: firings stay in order", async () => {
  const spec: WindowSpec = { kind: "sliding", sizeMs: 150, slideMs: 50, offsetMs: 0, time: "event" };
  const node = keyedNode({ op: "window", window: spec, apply: "process", allowedLatenessMs: 100, lateTag: null, withResultFn: false });
  const backend = new InMemoryStateBackend();
  const tag: OutputTag<number> = { id: "sizes" };
  const main = {
    async process(key: string, elements: TestEvent[], ctx: WindowContext<unknown>): Promise<void> {
      await new Promise((r) => setImmediate(r));
      ctx.emit({ key: JSON.parse(JSON.stringify(key)), window: ctx.window, ns: elements.map((e) => e.n) });
      ctx.output(tag, elements.length);
    },
  };
  const op = createKeyedOperator(node, { main }, backend, () => 0);
  const events = EVENTS.slice(0, 400);
  const wms = WATERMARKS.slice(0, 400);
  const out = await drive(op, backend, events, wms);
  const ref = referenceWindows(events, wms, spec, 100);
  assert.deepEqual(
    out.filter((e) => e.tag === null).map((e) => e.value),
    ref.firings.map((f) => expected("process", f, false)),
  );
  assert.deepEqual(
    out.filter((e) => e.tag === "sizes").map((e) => e.value),
    ref.firings.map((f) => f.elements.length),
  );
});

test("processing-time sessions merge by the clock and fire when it passes their end", async () => {
  let now = 0;
  const spec: WindowSpec = { kind: "session", gapMs: 30, time: "processing" };
  const node = keyedNode({ op: "window", window: spec, apply: "process", allowedLatenessMs: 0, lateTag: null, withResultFn: false });
  const backend = new InMemoryStateBackend();
  const main = (key: string, elements: string[], ctx: WindowContext<unknown>) => ctx.emit({ key, window: ctx.window, elements });
  const op = createKeyedOperator(node, { main }, backend, () => now);
  const emitted: Array<{ value: unknown; timestamp: number | undefined }> = [];
  const out = { emit: (value: unknown, timestamp?: number) => emitted.push({ value, timestamp }), side: () => assert.fail("no side output") };
  const { RECORD_CONTEXT } = await import("./harness.js");
  for (const [at, value] of [
    [0, "a"],
    [10, "b"],
    [100, "c"],
    [45, "late by the clock? never: it is its own time"],
  ] as const) {
    now = at;
    await op.element({ key: '"k"', keyGroup: 3, value, timestamp: undefined, side: 0 }, RECORD_CONTEXT, out);
  }
  // The record at clock 45 started [45, 75), which touches neither [0, 40) nor [100, 130).
  await op.advanceProcessingTime(80, RECORD_CONTEXT, out);
  assert.deepEqual(emitted, [
    { value: { key: "k", window: { start: 0, end: 40 }, elements: ["a", "b"] }, timestamp: 39 },
    { value: { key: "k", window: { start: 45, end: 75 }, elements: ["late by the clock? never: it is its own time"] }, timestamp: 74 },
  ]);
  assert.equal(op.nextProcessingTimer(), 129);
  await op.advanceProcessingTime(129, RECORD_CONTEXT, out);
  assert.equal(emitted.length, 3);
  assert.deepEqual(backend.size(), { entries: 0, bytes: 0, timers: 0 });
});

test("synchronous functions keep the path synchronous: no promise per record or per firing", async () => {
  const { RECORD_CONTEXT, collect } = await import("./harness.js");
  for (const [name, spec] of SPECS) {
    const node = keyedNode({ op: "window", window: spec, apply: "process", allowedLatenessMs: 50, lateTag: null, withResultFn: false });
    const backend = new InMemoryStateBackend();
    const op = createKeyedOperator(node, { main: (_k: unknown, els: unknown[], ctx: WindowContext<unknown>) => void ctx.emit(els.length) }, backend, () => 0);
    const emitted: unknown[] = [];
    for (const [i, r] of EVENTS.slice(0, 300).entries()) {
      assert.equal(op.advanceWatermark(WATERMARKS[i]!, RECORD_CONTEXT, collect(emitted as never[])), undefined, name);
      assert.equal(
        op.element({ key: r.key, keyGroup: 1, value: r.value, timestamp: r.timestamp, side: 0 }, RECORD_CONTEXT, collect(emitted as never[])),
        undefined,
        name,
      );
    }
    assert.equal(op.advanceWatermark(Infinity, RECORD_CONTEXT, collect(emitted as never[])), undefined, name);
    assert.ok(emitted.length > 10, name);
  }
});
