/** Unit tests of the stateful bench's pure parts: the event generator, the window reference and the result comparison. */
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  FLUSH_AFTER_MS,
  FLUSH_SERVICE,
  STATEFUL_EPOCH_MS,
  flushEvents,
  generateEvents,
  maxLatenessMs,
  partitionOf,
  type StatefulEvent,
} from "../../bench/stateful/events.js";
import { compareResults, referenceWindows, sortResults, type SlidingResult } from "../../bench/stateful/results.js";

const T0 = STATEFUL_EPOCH_MS;

test("the generator is deterministic in its seed and stays within its bounds", () => {
  const opts = { events: 20_000, services: 500, seed: 7 };
  const a = generateEvents(opts);
  assert.deepEqual(generateEvents(opts), a);
  assert.notDeepEqual(generateEvents({ ...opts, seed: 8 }), a);
  assert.equal(a.length, 20_000);
  for (const e of a) {
    assert.ok(Number.isInteger(e.latency) && e.latency >= 1 && e.latency <= 1000, `latency ${e.latency}`);
    assert.ok(Number.isInteger(e.ts) && e.ts >= T0 && e.ts < T0 + 200_000, `ts ${e.ts}`);
    assert.match(e.service, /^svc-\d{4}$/);
  }
  assert.ok(new Set(a.map((e) => e.service)).size > 490, "nearly every service appears");
  assert.ok(
    a.some((e, i) => i > 0 && e.ts < a[i - 1]!.ts),
    "some events step back in time",
  );
});

test("no event lies more than the jitter behind an earlier event of its partition", () => {
  const events = generateEvents({ events: 50_000, services: 1000, seed: 16, maxJitterMs: 2_000 });
  const lateness = maxLatenessMs(events, 4);
  assert.ok(lateness > 1_000 && lateness <= 2_000, `lateness ${lateness}`);
  assert.equal(
    maxLatenessMs(
      [
        { service: "a", ts: 10, latency: 1 },
        { service: "a", ts: 3, latency: 1 },
      ],
      1,
    ),
    7,
  );
});

test("partitionOf is FNV-1a modulo the partitions, the same in every process", () => {
  assert.equal(partitionOf("svc-0000", 4), 0);
  assert.equal(partitionOf("svc-0042", 4), 2);
  assert.equal(partitionOf("svc-9999", 4), 0);
  assert.equal(partitionOf(FLUSH_SERVICE, 4), 3);
  const counts = [0, 0, 0, 0];
  for (let i = 0; i < 10_000; i++) counts[partitionOf(`svc-${String(i).padStart(4, "0")}`, 4)]!++;
  for (const c of counts) assert.ok(c > 2_000 && c < 3_000, `partition sizes ${counts}`);
});

test("one flush event per partition, an hour after the last event", () => {
  const flush = flushEvents(
    [
      { service: "a", ts: T0 + 5, latency: 1 },
      { service: "b", ts: T0 + 9, latency: 1 },
      { service: "c", ts: T0 + 7, latency: 1 },
    ],
    4,
  );
  assert.deepEqual(
    flush,
    [0, 1, 2, 3].map((partition) => ({ service: FLUSH_SERVICE, ts: T0 + 9 + FLUSH_AFTER_MS, latency: 0, partition })),
  );
});

test("the reference puts events into epoch-aligned tumbling and sliding windows, without the flush key", () => {
  const events: StatefulEvent[] = [
    { service: "a", ts: T0 + 25_000, latency: 10 },
    { service: "a", ts: T0 + 29_999, latency: 4 },
    { service: "a", ts: T0 + 30_000, latency: 7 },
    { service: "b", ts: T0 + 5_000, latency: 1 },
    { service: FLUSH_SERVICE, ts: T0 + 3_600_000, latency: 0 },
  ];
  const { tumbling, sliding } = referenceWindows(events);
  assert.deepEqual(tumbling, [
    { service: "a", start: T0 + 20_000, end: T0 + 30_000, count: 2 },
    { service: "a", start: T0 + 30_000, end: T0 + 40_000, count: 1 },
    { service: "b", start: T0, end: T0 + 10_000, count: 1 },
  ]);
  const w = (service: string, s: number, count: number, sum: number, min: number, max: number): SlidingResult => ({
    service,
    start: T0 + s,
    end: T0 + s + 30_000,
    count,
    sum,
    min,
    max,
  });
  assert.deepEqual(sliding, [
    w("a", 0, 2, 14, 4, 10),
    w("a", 10_000, 3, 21, 4, 10),
    w("a", 20_000, 3, 21, 4, 10),
    w("a", 30_000, 1, 7, 7, 7),
    w("b", -20_000, 1, 1, 1, 1),
    w("b", -10_000, 1, 1, 1, 1),
    w("b", 0, 1, 1, 1, 1),
  ]);
});

test("the reference agrees with counting each window by brute force", () => {
  const events = generateEvents({ events: 3_000, services: 20, seed: 3 });
  const { tumbling, sliding } = referenceWindows(events);
  assert.equal(
    tumbling.reduce((n, r) => n + r.count, 0),
    events.length,
  );
  assert.equal(
    sliding.reduce((n, r) => n + r.count, 0),
    3 * events.length,
    "each event lies in three 30 s windows sliding by 10 s",
  );
  for (const r of sliding.filter((_, i) => i % 7 === 0)) {
    const inside = events.filter((e) => e.service === r.service && e.ts >= r.start && e.ts < r.end).map((e) => e.latency);
    assert.deepEqual(
      { count: r.count, sum: r.sum, min: r.min, max: r.max },
      { count: inside.length, sum: inside.reduce((a, b) => a + b, 0), min: Math.min(...inside), max: Math.max(...inside) },
    );
  }
});

test("compareResults finds missing, extra, different and duplicate windows, and ignores order", () => {
  const { tumbling } = referenceWindows(generateEvents({ events: 500, services: 10, seed: 1 }));
  assert.ok(compareResults(tumbling, [...tumbling].reverse()).equal);
  assert.deepEqual(sortResults([...tumbling].reverse()), tumbling);

  const [first, second, third, ...rest] = tumbling;
  const changed = { ...third!, count: third!.count + 1 };
  const stray = { service: "zz", start: 0, end: 10_000, count: 1 };
  const diff = compareResults(tumbling, [second!, second!, changed, ...rest, stray]);
  assert.equal(diff.equal, false);
  assert.deepEqual(diff.missing, [first]);
  assert.deepEqual(diff.extra, [stray]);
  assert.deepEqual(diff.different, [{ expected: third, actual: changed }]);
  assert.deepEqual(diff.duplicates, [second]);
  assert.match(diff.summary, /1 missing, 1 extra, 1 different, 1 duplicates/);
});
