/** Keyed process functions: value, list and map state with TTL, event and processing timers. */
import { test } from "node:test";
import assert from "node:assert/strict";
import type { KeyedContext, KeyedProcessFunction, OnTimerContext } from "../../../core/api/state.js";
import { InMemoryStateBackend } from "../../../activities/state/backend.js";
import { createKeyedOperator } from "../../../activities/state/create.js";
import { StateUsageError } from "../../../activities/state/errors.js";
import type { KeyedOperator } from "../../../activities/state/keyed-operator.js";
import { collect, drive, generateEvents, keyedNode, RECORD_CONTEXT, type Emitted, type TestEvent } from "./harness.js";
import { referenceWindows, watermarksBefore } from "./reference.js";

const NODE = keyedNode({ op: "process" });

function processOperator(fn: unknown, clock: () => number = () => 0): { op: KeyedOperator; backend: InMemoryStateBackend } {
  const backend = new InMemoryStateBackend();
  return { op: createKeyedOperator(NODE, { main: fn }, backend, clock), backend };
}

test("value, list and map state per key", async () => {
  const fn: KeyedProcessFunction<string, TestEvent, unknown> = {
    processElement(e, ctx) {
      const count = ctx.state.value<number>("count");
      const recent = ctx.state.list<number>("recent");
      const byParity = ctx.state.map<"even" | "odd", number>("by parity");
      count.update((count.value() ?? 0) + 1);
      recent.add(e.n);
      if (recent.get().length > 3) recent.update(recent.get().slice(-3));
      const parity = e.n % 2 === 0 ? "even" : "odd";
      byParity.put(parity, (byParity.get(parity) ?? 0) + 1);
      if (count.value() === 5) byParity.remove("odd");
      ctx.emit({ key: ctx.key, count: count.value(), recent: recent.get(), parity: Object.fromEntries(byParity.entries()), odd: byParity.contains("odd") });
    },
  };
  const { op, backend } = processOperator(fn);
  const events = generateEvents(3, 300, { keys: 4 });
  const out = await drive(
    op,
    backend,
    events,
    events.map(() => -Infinity),
  );
  const seen = new Map<string, { count: number; recent: number[]; parity: Record<string, number> }>();
  const expected = events.map((r) => {
    const s = seen.get(r.value.k) ?? { count: 0, recent: [], parity: {} };
    seen.set(r.value.k, s);
    s.count++;
    s.recent = [...s.recent, r.value.n].slice(-3);
    const parity = r.value.n % 2 === 0 ? "even" : "odd";
    s.parity[parity] = (s.parity[parity] ?? 0) + 1;
    if (s.count === 5) delete s.parity.odd;
    return { value: { key: r.value.k, count: s.count, recent: s.recent, parity: { ...s.parity }, odd: "odd" in s.parity }, timestamp: r.timestamp, tag: null };
  });
  assert.deepEqual(
    out.map((e) => ({ ...e, value: { ...(e.value as object), parity: sortKeys((e.value as { parity: Record<string, number> }).parity) } })),
    expected.map((e) => ({ ...e, value: { ...e.value, parity: sortKeys(e.value.parity) } })),
  );
});

function sortKeys(o: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : 1)));
}

test("TTL: a value expires ttl after its last write (processing time), reads as absent and is deleted", async () => {
  let now = 0;
  const reads: unknown[] = [];
  const fn = {
    processElement(cmd: { op: string; v?: number }, ctx: KeyedContext<string, unknown>) {
      const v = ctx.state.value<number>("v", { ttlMs: 100 });
      const l = ctx.state.list<number>("l", { ttlMs: 100 });
      const m = ctx.state.map<string, number>("m", { ttlMs: 100 });
      if (cmd.op === "write") {
        v.update(cmd.v!);
        l.add(cmd.v!);
        m.put(String(cmd.v), cmd.v!);
      } else reads.push({ at: now, v: v.value(), l: l.get(), m: m.entries() });
    },
  };
  const { op, backend } = processOperator(fn, () => now);
  const out = collect([]);
  const send = async (at: number, value: { op: string; v?: number }) => {
    now = at;
    await op.element({ key: '"k"', keyGroup: 0, value, timestamp: undefined, side: 0 }, RECORD_CONTEXT, out);
  };
  await send(0, { op: "write", v: 1 });
  await send(60, { op: "write", v: 2 });
  await send(99, { op: "read" });
  await send(100, { op: "read" });
  await send(159, { op: "read" });
  assert.equal(backend.size().entries, 3, "all three states still stored");
  await send(160, { op: "read" });
  assert.deepEqual(reads, [
    {
      at: 99,
      v: 2,
      l: [1, 2],
      m: [
        ["1", 1],
        ["2", 2],
      ],
    },
    { at: 100, v: 2, l: [2], m: [["2", 2]] },
    { at: 159, v: 2, l: [2], m: [["2", 2]] },
    { at: 160, v: undefined, l: [], m: [] },
  ]);
  assert.deepEqual(backend.size(), { entries: 0, bytes: 0, timers: 0 }, "expired state is deleted when read");
});

test("event timers: one per key and time however often registered, fired by time then key when the watermark passes", async () => {
  const fn: KeyedProcessFunction<string, TestEvent, unknown> = {
    processElement(e, ctx) {
      const end = Math.floor(e.ts / 100) * 100 + 100;
      ctx.timers.registerEventTime(end - 1);
      const byEnd = ctx.state.map<string, number[]>("by end");
      byEnd.put(String(end), [...(byEnd.get(String(end)) ?? []), e.n]);
    },
    onTimer(ts, ctx: OnTimerContext<string, unknown>) {
      assert.equal(ctx.domain, "event");
      assert.equal(ctx.timestamp, ts);
      assert.ok(ctx.timers.currentWatermark() >= ts);
      const byEnd = ctx.state.map<string, number[]>("by end");
      ctx.emit({ key: ctx.key, end: ts + 1, ns: byEnd.get(String(ts + 1)) });
      byEnd.remove(String(ts + 1));
    },
  };
  const { op, backend } = processOperator(fn);
  // No late records: the process function is then a tumbling window.
  const events = generateEvents(9, 800, { keys: 6, jitter: 30, lateShare: 0 });
  const wms = watermarksBefore(events, 40);
  const out = await drive(op, backend, events, wms);
  const ref = referenceWindows(events, wms, { kind: "tumbling", sizeMs: 100, offsetMs: 0, time: "event" });
  assert.ok(ref.late.length === 0 && ref.firings.length > 50);
  assert.deepEqual(
    out,
    ref.firings.map((f) => ({ value: { key: JSON.parse(f.key), end: f.window.end, ns: f.elements.map((e) => e.n) }, timestamp: f.window.end - 1, tag: null })),
  );
  assert.deepEqual(backend.size(), { entries: 0, bytes: 0, timers: 0 });
});

test("processing timers fire on advanceProcessingTime; deleted timers do not; async functions are awaited", async () => {
  const now = 1_000;
  const fn = {
    async processElement(v: string, ctx: KeyedContext<string, unknown>) {
      await Promise.resolve();
      assert.equal(ctx.timers.currentProcessingTime(), now);
      ctx.timers.registerProcessingTime(now + 50);
      ctx.timers.registerProcessingTime(now + 80);
      if (v === "cancel") ctx.timers.deleteProcessingTime(now + 80);
      ctx.state.value<string>("last").update(v);
    },
    async onTimer(ts: number, ctx: OnTimerContext<string, unknown>) {
      await new Promise((r) => setImmediate(r));
      ctx.emit({ key: ctx.key, ts, domain: ctx.domain, last: ctx.state.value<string>("last").value() });
    },
  };
  const { op } = processOperator(fn, () => now);
  const emitted: Emitted[] = [];
  const out = collect(emitted);
  await op.element({ key: '"b"', keyGroup: 1, value: "keep", timestamp: 5, side: 0 }, RECORD_CONTEXT, out);
  await op.element({ key: '"a"', keyGroup: 2, value: "cancel", timestamp: 6, side: 0 }, RECORD_CONTEXT, out);
  assert.equal(op.nextProcessingTimer(), 1_050);
  await op.advanceWatermark(Infinity, RECORD_CONTEXT, out);
  assert.deepEqual(emitted, []);
  await op.advanceProcessingTime(1_080, RECORD_CONTEXT, out);
  assert.deepEqual(emitted, [
    { value: { key: "a", ts: 1_050, domain: "processing", last: "cancel" }, timestamp: undefined, tag: null },
    { value: { key: "b", ts: 1_050, domain: "processing", last: "keep" }, timestamp: undefined, tag: null },
    { value: { key: "b", ts: 1_080, domain: "processing", last: "keep" }, timestamp: undefined, tag: null },
  ]);
  assert.equal(op.nextProcessingTimer(), null);
});

test("a state name used as two kinds, a bad TTL, a value JSON cannot carry: clear errors", async () => {
  const attempts: Array<(ctx: KeyedContext<string, unknown>) => void> = [
    (ctx) => {
      ctx.state.value("x");
      ctx.state.list("x");
    },
    (ctx) => ctx.state.value("y", { ttlMs: 0 }),
    (ctx) => ctx.state.map<string, unknown>("z").put("a", new Date(0)),
    (ctx) => ctx.state.list<unknown>("w", { ttlMs: 5 }).add(undefined),
  ];
  const messages = [
    /state "x" is a value state; it cannot also be used as a list state/,
    /state "y": ttlMs must be/,
    /state "z" at map key "a" cannot hold this value: the value is a Date/,
    /state "w" cannot hold this value: the value is undefined/,
  ];
  for (const [i, attempt] of attempts.entries()) {
    const { op, backend } = processOperator({ processElement: (_: unknown, ctx: KeyedContext<string, unknown>) => attempt(ctx) });
    backend.beginRecord();
    assert.throws(() => op.element({ key: '"k"', keyGroup: 0, value: 1, timestamp: 0, side: 0 }, RECORD_CONTEXT, collect([])), messages[i]!);
    backend.abortRecord();
    assert.deepEqual(backend.size(), { entries: 0, bytes: 0, timers: 0 });
  }
  assert.ok(new StateUsageError("x").code === "STATE_USAGE");
});
