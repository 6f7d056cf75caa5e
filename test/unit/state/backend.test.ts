/** The state backends, in-memory and embedded, through the same tests: JSON-only values, record and unit levels, the changelog, timers. */
import { test } from "node:test";
import assert from "node:assert/strict";
import type { StateBackend } from "../../../activities/state/backend.js";
import { BACKENDS } from "./backends.js";
import { entryKey, parseEntryKey } from "../../../activities/state/entry-key.js";
import { StateValueError } from "../../../activities/state/errors.js";
import { STATE, userStateName } from "../../../activities/state/state-names.js";

const K = JSON.stringify("key");

/** A test run once per backend, with a maker of fresh, empty ones. */
function backendTest(name: string, body: (make: () => StateBackend) => void): void {
  for (const [kind, make] of BACKENDS) test(`${kind}: ${name}`, () => body(make));
}

backendTest("put and get: values come back as fresh copies; append builds an array without parsing", (make) => {
  const b = make();
  const v = { a: [1, 2.5, "x", true, null], b: { c: -0.5 }, gone: undefined };
  b.put(3, K, "s", "", v);
  const got = b.get(3, K, "s", "") as typeof v;
  assert.deepEqual(got, { a: [1, 2.5, "x", true, null], b: { c: -0.5 } });
  got.a.push(9);
  assert.deepEqual((b.get(3, K, "s", "") as typeof v).a.length, 5);
  assert.equal(b.get(3, K, "s", "other"), undefined);
  assert.equal(b.append(3, K, "l", "", { n: 1 }), true);
  assert.equal(b.append(3, K, "l", "", "two"), false);
  assert.deepEqual(b.get(3, K, "l", ""), [{ n: 1 }, "two"]);
});

backendTest("put refuses what JSON cannot carry, naming the state and what was wrong", (make) => {
  const b = make();
  class Point {
    x = 1;
  }
  const cycle: Record<string, unknown> = { a: 1 };
  cycle.self = cycle;
  const cases: Array<[unknown, RegExp]> = [
    [undefined, /the value is undefined/],
    [() => 1, /the value is a function/],
    [Symbol("s"), /the value is a symbol/],
    [10n, /the value is a BigInt \(10n\)/],
    [NaN, /the value is NaN/],
    [{ m: Infinity }, /the value\.m is Infinity/],
    [{ m: [1, -Infinity] }, /the value\.m\[1\] is -Infinity/],
    [new Map(), /the value is a Map/],
    [new Set([1]), /the value is a Set/],
    [{ at: new Date(0) }, /the value\.at is a Date/],
    [new Point(), /the value is a Point/],
    [cycle, /the value\.self contains a cycle/],
    [[1, undefined], /the value\[1\] is undefined/],
    [Promise.resolve(1), /is a Promise \(state functions must return values, not promises\)/],
  ];
  for (const [value, message] of cases) {
    assert.throws(
      () => b.put(0, K, userStateName("counts"), "", value),
      (err: unknown) =>
        err instanceof StateValueError &&
        err.code === "STATE_VALUE" &&
        /^state "counts" cannot hold this value: /.test(err.message) &&
        message.test(err.message),
      String(message),
    );
  }
  assert.throws(() => b.put(0, K, STATE.window, "0,10", NaN), /state \$w: the window's state .* cannot hold this value: the value is NaN/);
  assert.equal(b.size().entries, 0, "nothing was stored");
});

test("entry keys: key group first, zero-padded; any key and escaped user names parse back", () => {
  const keys = [JSON.stringify("a|b|c"), JSON.stringify({ x: [1, "|"] }), "42", JSON.stringify("\u2603 é")];
  const names = ["plain", "with|pipe", "$dollar", "100%"];
  for (const key of keys) {
    for (const name of names) {
      const entry = entryKey(17, userStateName(name), "5,10", key);
      assert.ok(entry.startsWith("00017|"));
      assert.deepEqual(parseEntryKey(entry), { keyGroup: 17, name: userStateName(name), namespace: "5,10", key });
      assert.ok(!userStateName(name).startsWith("$"), "user names never look like the engine's");
    }
  }
  assert.equal(decodeURIComponent(userStateName("with|pipe")), "with|pipe");
});

backendTest("abortRecord leaves no trace: values, deletions, timers set and fired", (make) => {
  const b = make();
  b.put(1, K, "v", "", 1);
  b.registerTimer("event", 1, K, "", 50);
  b.takeChanges();
  const before = [...b.entriesInKeyGroups(0, 128)];
  b.beginRecord();
  b.put(1, K, "v", "", 2);
  b.put(1, K, "w", "", "new");
  b.append(1, K, "l", "", 1);
  b.registerTimer("event", 1, K, "", 10);
  b.registerTimer("processing", 1, K, "", 10);
  assert.equal(b.pollTimer("event", 100)?.ts, 10);
  assert.equal(b.pollTimer("event", 100)?.ts, 50);
  b.abortRecord();
  assert.deepEqual([...b.entriesInKeyGroups(0, 128)], before);
  assert.equal(b.get(1, K, "v", ""), 1);
  assert.deepEqual(b.size().timers, 1);
  assert.equal(b.nextTimer("processing"), null);
  assert.equal(b.pollTimer("event", 100)?.ts, 50, "the fired timer is back and fires again");
  assert.equal(b.pollTimer("event", 100), undefined);
  assert.deepEqual(b.takeChanges(), [{ key: entryKey(1, STATE.eventTimers, "50:", K), value: null }]);
});

backendTest("takeChanges: last value per changed entry, null for deleted, nothing for changes undone within the unit", (make) => {
  const b = make();
  b.put(0, K, "a", "", 1);
  b.put(0, K, "gone", "", 1);
  b.takeChanges();
  b.beginRecord();
  b.put(0, K, "a", "", 2);
  b.put(0, K, "a", "", 3);
  b.remove(0, K, "gone", "");
  b.put(0, K, "temp", "", 1);
  b.commitRecord();
  b.beginRecord();
  b.remove(0, K, "temp", "");
  b.put(0, K, "b", "", "x");
  b.commitRecord();
  assert.deepEqual(b.takeChanges(), [
    { key: entryKey(0, "a", "", K), value: "3" },
    { key: entryKey(0, "gone", "", K), value: null },
    { key: entryKey(0, "b", "", K), value: '"x"' },
  ]);
  assert.deepEqual(b.takeChanges(), []);
});

backendTest("discardUnit undoes the unit and an open record; restore rebuilds state and timers from the changelog", (make) => {
  const b = make();
  const changelog = [];
  b.put(5, K, "a", "", { n: 1 });
  b.registerTimer("event", 5, K, "0,10", 9);
  b.registerTimer("processing", 5, K, "", 1_000);
  changelog.push(...b.takeChanges());
  b.put(5, K, "a", "", { n: 2 });
  b.deleteTimer("event", 5, K, "0,10", 9);
  b.beginRecord();
  b.put(5, K, "c", "", 1);
  b.discardUnit();
  assert.deepEqual(b.get(5, K, "a", ""), { n: 1 });
  assert.equal(b.get(5, K, "c", ""), undefined);
  assert.equal(b.nextTimer("event"), 9, "the deleted timer is back");
  b.put(5, K, "a", "", { n: 3 });
  b.remove(5, K, "a", "");
  b.put(7, K, "z", "ns", [1]);
  changelog.push(...b.takeChanges());

  const fresh = make();
  fresh.restore(changelog);
  assert.deepEqual([...fresh.entriesInKeyGroups(0, 128)].sort(byKey), [...b.entriesInKeyGroups(0, 128)].sort(byKey));
  assert.deepEqual(fresh.size(), b.size());
  assert.equal(fresh.get(5, K, "a", ""), undefined);
  assert.deepEqual(fresh.get(7, K, "z", "ns"), [1]);
  assert.deepEqual(fresh.pollTimer("event", 9), { ts: 9, keyGroup: 5, key: K, namespace: "0,10" });
  assert.equal(fresh.nextTimer("processing"), 1_000);
  assert.deepEqual([...fresh.entriesInKeyGroups(6, 8)], [{ key: entryKey(7, "z", "ns", K), value: "[1]" }]);
  assert.throws(() => fresh.restore([]), /uncommitted changes/);
});

function byKey(a: { key: string }, b: { key: string }): number {
  return a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
}

backendTest("timers: set once, fire by time then key then namespace, deleted ones never fire, stale heap items compacted", (make) => {
  const b = make();
  const keys = ["c", "a", "b"].map((k) => JSON.stringify(k));
  for (const key of keys) {
    for (const ts of [30, 10, 20, 10]) b.registerTimer("event", 0, key, "n", ts);
    b.registerTimer("event", 0, key, "m", 20);
  }
  assert.equal(b.size().timers, 12);
  b.deleteTimer("event", 0, keys[0]!, "n", 20);
  const fired = [];
  for (let t = b.pollTimer("event", 25); t !== undefined; t = b.pollTimer("event", 25)) fired.push(`${t.ts}${JSON.parse(t.key)}${t.namespace}`);
  assert.deepEqual(fired, ["10an", "10bn", "10cn", "20am", "20an", "20bm", "20bn", "20cm"]);
  assert.equal(b.nextTimer("event"), 30);
  // Churn: set and delete many timers; the heap must not grow without bound, and live ones still fire.
  for (let i = 0; i < 20_000; i++) {
    b.registerTimer("event", 0, keys[1]!, "x", 1_000 + i);
    b.deleteTimer("event", 0, keys[1]!, "x", 1_000 + i);
  }
  assert.ok((b as unknown as { index: { event: { length: number } } }).index.event.length < 2_000);
  assert.deepEqual(
    [b.pollTimer("event", 1e9)?.ts, b.pollTimer("event", 1e9)?.ts, b.pollTimer("event", 1e9)?.ts, b.pollTimer("event", 1e9)],
    [30, 30, 30, undefined],
  );
  assert.throws(() => b.registerTimer("event", 0, K, "", NaN), /finite time/);
});

backendTest("size counts entries, timers and bytes of keys and values", (make) => {
  const b = make();
  b.put(0, K, "a", "", "xy");
  b.registerTimer("processing", 0, K, "", 5);
  const entry = entryKey(0, "a", "", K);
  const timer = entryKey(0, STATE.processingTimers, "5:", K);
  assert.deepEqual(b.size(), { entries: 1, timers: 1, bytes: entry.length + 4 + timer.length + 1 });
  b.remove(0, K, "a", "");
  b.pollTimer("processing", 5);
  assert.deepEqual(b.size(), { entries: 0, timers: 0, bytes: 0 });
});

backendTest("unitChanges lists the unit's changes and leaves them pending: takeChanges applies them, discardUnit undoes them", (make) => {
  const b = make();
  b.beginRecord();
  b.put(3, '"k"', "count", "", 1);
  b.commitRecord();
  b.takeChanges();
  b.beginRecord();
  b.put(3, '"k"', "count", "", 2);
  b.commitRecord();
  const pending = b.unitChanges();
  assert.equal(pending.length, 1);
  assert.equal(pending[0]!.value, "2");
  assert.deepEqual(b.unitChanges(), pending, "listing twice gives the same");
  b.discardUnit();
  assert.equal(b.get(3, '"k"', "count", ""), 1, "discarded: the committed value is back");
  assert.deepEqual(b.unitChanges(), []);
  b.beginRecord();
  b.put(3, '"k"', "count", "", 5);
  b.commitRecord();
  const listed = b.unitChanges();
  assert.deepEqual(b.takeChanges(), listed, "takeChanges returns what was listed");
  assert.equal(b.get(3, '"k"', "count", ""), 5);
  assert.deepEqual(b.unitChanges(), [], "nothing pending after takeChanges");
});
