/**
 * Exactly-once building blocks: a cold worker that restores the changelog continues exactly as the
 * warm one would have, so does an embedded store reopened from its disk and caught up from the
 * changelog's tail, and a failed record (aborted, then retried) leaves no trace.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import type { KeyedContext, OnTimerContext } from "../../../core/api/state.js";
import type { KeyedSpec } from "../../../core/plan/logical.js";
import { InMemoryStateBackend } from "../../../activities/state/backend.js";
import { EmbeddedStateBackend } from "../../../activities/state/embedded-backend.js";
import { createKeyedOperator, type KeyedFunctions } from "../../../activities/state/create.js";
import type { ChangelogEntry } from "../../../activities/state/keyed-operator.js";
import { keyGroupOf } from "../../../core/plan/key-groups.js";
import { collect, drive, generateEvents, KEY_GROUPS, keyedNode, RECORD_CONTEXT, type Emitted, type TestEvent } from "./harness.js";
import { watermarksBefore } from "./reference.js";
import { openEmbedded, tempStoreDir } from "./backends.js";

const EVENTS = generateEvents(33, 1200, { keys: 6 });
const WATERMARKS = watermarksBefore(EVENTS, 50);

const trail = {
  createAccumulator: () => [] as number[],
  add: (e: TestEvent, acc: number[]) => [...acc, e.n],
  getResult: (acc: number[]) => acc,
  merge: (a: number[], b: number[]) => [...a, ...b],
};

const process = {
  processElement(e: TestEvent, ctx: KeyedContext<string, unknown>) {
    const seen = ctx.state.list<number>("seen");
    seen.add(e.n);
    ctx.timers.registerEventTime(Math.floor(e.ts / 200) * 200 + 199);
  },
  onTimer(ts: number, ctx: OnTimerContext<string, unknown>) {
    const seen = ctx.state.list<number>("seen");
    ctx.emit({ key: ctx.key, ts, seen: seen.get() });
    seen.clear();
  },
};

const CASES: Array<[string, KeyedSpec, KeyedFunctions]> = [
  [
    "sliding aggregate with lateness",
    {
      op: "window",
      window: { kind: "sliding", sizeMs: 150, slideMs: 50, offsetMs: 0, time: "event" },
      apply: "aggregate",
      allowedLatenessMs: 80,
      lateTag: "late",
      withResultFn: false,
    },
    { main: trail },
  ],
  [
    "session process",
    { op: "window", window: { kind: "session", gapMs: 30, time: "event" }, apply: "process", allowedLatenessMs: 50, lateTag: null, withResultFn: false },
    { main: (key: string, els: TestEvent[], ctx: { emit(v: unknown): void }) => ctx.emit([key, ...els.map((e) => e.n)]) },
  ],
  [
    "count sliding reduce",
    { op: "window", window: { kind: "count", size: 4, slide: 3 }, apply: "reduce", allowedLatenessMs: 0, lateTag: null, withResultFn: false },
    { main: (a: TestEvent, b: TestEvent) => ({ ...a, s: `${a.s},${b.s}` }) },
  ],
  ["keyed process with timers", { op: "process" }, { main: process }],
  [
    "interval join",
    { op: "intervalJoin", lowerMs: -20, upperMs: 30 },
    { main: (l: TestEvent, r: TestEvent, ctx: { emit(v: unknown): void }) => ctx.emit([l.n, r.n]) },
  ],
];

for (const [name, spec, fns] of CASES) {
  test(`${name}: changelog taken every 97 records and restored into a fresh backend gives the same results`, async () => {
    const records = EVENTS.map((r, i) => ({ ...r, side: i % 3 === 0 ? 1 : 0 }));
    const warmBackend = new InMemoryStateBackend();
    const warm = await drive(
      createKeyedOperator(keyedNode(spec), fns, warmBackend, () => 0),
      warmBackend,
      records,
      WATERMARKS,
    );

    const changelog: ChangelogEntry[] = [];
    const firstBackend = new InMemoryStateBackend();
    const first = createKeyedOperator(keyedNode(spec), fns, firstBackend, () => 0);
    const half = 611;
    const out: Emitted[] = [];
    for (let from = 0; from < half; from += 97) {
      await drive(first, firstBackend, records, WATERMARKS, { from, to: Math.min(half, from + 97), end: false, out });
      changelog.push(...firstBackend.takeChanges());
    }
    // A transaction that failed: its changes are discarded and never reach the changelog.
    await drive(first, firstBackend, records, WATERMARKS, { from: half, to: half + 50, end: false, out: [] });
    firstBackend.discardUnit();

    const coldBackend = new InMemoryStateBackend();
    coldBackend.restore(changelog);
    assert.deepEqual(coldBackend.size(), firstBackend.size());
    const cold = createKeyedOperator(keyedNode(spec), fns, coldBackend, () => 0);
    await drive(cold, coldBackend, records, WATERMARKS, { from: half, out });
    assert.ok(warm.length > 100, `outputs: ${warm.length}`);
    assert.deepEqual(out, warm);
  });
}

for (const [name, spec, fns] of CASES) {
  test(`${name}: an embedded store reopened from its disk and caught up from the changelog's tail gives the same results`, async () => {
    const records = EVENTS.map((r, i) => ({ ...r, side: i % 3 === 0 ? 1 : 0 }));
    const warmBackend = new InMemoryStateBackend();
    const warm = await drive(
      createKeyedOperator(keyedNode(spec), fns, warmBackend, () => 0),
      warmBackend,
      records,
      WATERMARKS,
    );

    const dir = tempStoreDir();
    const changelog: ChangelogEntry[] = [];
    const firstBackend = EmbeddedStateBackend.open(dir);
    const first = createKeyedOperator(keyedNode(spec), fns, firstBackend, () => 0);
    const half = 611;
    const out: Emitted[] = [];
    let marker = 0;
    for (let from = 0; from < half; from += 97) {
      await drive(first, firstBackend, records, WATERMARKS, { from, to: Math.min(half, from + 97), end: false, out });
      changelog.push(...firstBackend.takeChanges());
      marker++;
      // The first four units reach the disk (with the changelog offset they end at); the last ones
      // only the changelog, as when the worker dies before its disk write, or another worker ran them.
      if (marker > 4) continue;
      firstBackend.persist(marker);
      firstBackend.noteOffset(marker, changelog.length);
    }
    await drive(first, firstBackend, records, WATERMARKS, { from: half, to: half + 50, end: false, out: [] });
    firstBackend.discardUnit();
    const size = firstBackend.size();
    await firstBackend.close();

    const reopened = openEmbedded(dir);
    const stored = reopened.stored!;
    assert.equal(stored.marker, 4);
    assert.ok(stored.offset > 0 && stored.offset < changelog.length, `a tail to replay: from ${stored.offset} of ${changelog.length}`);
    reopened.restore(changelog.slice(stored.offset));
    reopened.setMark(marker, changelog.length);
    assert.deepEqual(reopened.size(), size);
    const cold = createKeyedOperator(keyedNode(spec), fns, reopened, () => 0);
    await drive(cold, reopened, records, WATERMARKS, { from: half, out });
    assert.deepEqual(out, warm);
  });
}

test("a record whose function fails is aborted and retried: no trace of the failed attempt", async () => {
  let failures = 0;
  const flaky = {
    ...trail,
    add: (e: TestEvent, acc: number[]) => {
      if (e.n % 10 === 3 && failures++ % 2 === 0) throw new Error("flaky");
      return trail.add(e, acc);
    },
  };
  const spec: KeyedSpec = {
    op: "window",
    window: { kind: "session", gapMs: 30, time: "event" },
    apply: "aggregate",
    allowedLatenessMs: 40,
    lateTag: null,
    withResultFn: false,
  };
  const cleanBackend = new InMemoryStateBackend();
  const clean = await drive(
    createKeyedOperator(keyedNode(spec), { main: trail }, cleanBackend, () => 0),
    cleanBackend,
    EVENTS,
    WATERMARKS,
  );

  const backend = new InMemoryStateBackend();
  const op = createKeyedOperator(keyedNode(spec), { main: flaky }, backend, () => 0);
  const emitted: Emitted[] = [];
  for (const [i, r] of EVENTS.entries()) {
    await op.advanceWatermark(WATERMARKS[i]!, RECORD_CONTEXT, collect(emitted));
    for (;;) {
      const buffered: Emitted[] = [];
      backend.beginRecord();
      try {
        await op.element(
          { key: r.key, keyGroup: keyGroupOf(r.key, KEY_GROUPS), value: r.value, timestamp: r.timestamp, side: 0 },
          RECORD_CONTEXT,
          collect(buffered),
        );
        backend.commitRecord();
        emitted.push(...buffered);
        break;
      } catch {
        backend.abortRecord();
      }
    }
  }
  await op.advanceWatermark(Infinity, RECORD_CONTEXT, collect(emitted));
  assert.ok(failures > 50, `failed attempts: ${failures}`);
  assert.deepEqual(emitted, clean);
});
