/** The embedded backend's own part: what reaches the disk and when, reopening, long keys, the lock. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { statSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { StoreBusyError, StoreDamagedError } from "../../../activities/state/disk-store.js";
import { EmbeddedStateBackend } from "../../../activities/state/embedded-backend.js";
import { entryKey } from "../../../activities/state/entry-key.js";
import type { ChangelogEntry } from "../../../activities/state/keyed-operator.js";
import { STATE } from "../../../activities/state/state-names.js";
import { openEmbedded, tempStoreDir } from "./backends.js";

const K = JSON.stringify("key");

function sorted(entries: Iterable<ChangelogEntry>): ChangelogEntry[] {
  return [...entries].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

/** Fires every timer of `domain` (to `upTo`), as `ts:key:namespace`, in firing order. */
function fireAll(b: EmbeddedStateBackend, domain: "event" | "processing", upTo = Infinity): string[] {
  const fired: string[] = [];
  for (let t = b.pollTimer(domain, upTo); t !== undefined; t = b.pollTimer(domain, upTo)) fired.push(`${t.ts}:${t.key}:${t.namespace}`);
  return fired;
}

test("persisted units reach the disk with their marker: a reopened store has the same entries, timers, sizes and mark", async () => {
  const dir = tempStoreDir();
  const b = EmbeddedStateBackend.open(dir);
  assert.equal(b.stored, null, "a new store has no mark");
  b.put(1, K, "count", "", 1);
  b.put(2, '"other"', "count", "", 7);
  b.registerTimer("event", 1, K, "0,10", 9);
  b.registerTimer("processing", 2, '"other"', "", 500);
  b.takeChanges();
  b.persist(1);
  b.put(1, K, "count", "", 2);
  b.append(1, K, "list", "", "a");
  b.registerTimer("event", 2, '"other"', "0,10", 9);
  b.takeChanges();
  b.persist(2);
  b.noteOffset(2, 42);
  b.remove(2, '"other"', "count", "");
  b.deleteTimer("processing", 2, '"other"', "", 500);
  b.takeChanges();
  b.persist(3);
  const entries = sorted(b.entriesInKeyGroups(0, 128));
  const size = b.size();
  await b.close();

  const again = openEmbedded(dir);
  assert.deepEqual(again.stored, { marker: 3, offset: 42 }, "the marker of the last persist, the offset noted before it");
  assert.deepEqual(sorted(again.entriesInKeyGroups(0, 128)), entries);
  assert.deepEqual(again.size(), size);
  assert.equal(again.get(1, K, "count", ""), 2);
  assert.deepEqual(again.get(1, K, "list", ""), ["a"]);
  assert.equal(again.get(2, '"other"', "count", ""), undefined);
  assert.equal(again.nextTimer("processing"), null, "the deleted timer stayed deleted");
  assert.deepEqual(fireAll(again, "event"), [`9:${K}:0,10`, `9:"other":0,10`], "timers rebuilt from the disk fire in order");
});

test("committed changes are read from memory until their write lands, then from the disk; a unit never persisted is not on disk", async () => {
  const dir = tempStoreDir();
  const b = EmbeddedStateBackend.open(dir);
  b.put(0, K, "v", "", "first");
  b.takeChanges();
  b.persist(1);
  assert.equal(b.get(0, K, "v", ""), "first", "visible while its write is in flight");
  await b.flushed();
  assert.equal((b as unknown as { flushing: Map<string, unknown> }).flushing.size, 0, "nothing left in memory once written");
  assert.equal(b.get(0, K, "v", ""), "first", "read from the disk");
  b.put(0, K, "v", "", "second");
  b.takeChanges();
  assert.equal(b.unpersisted, true);
  assert.equal(b.get(0, K, "v", ""), "second");
  await b.close();
  const again = openEmbedded(dir);
  assert.deepEqual(again.stored, { marker: 1, offset: 0 });
  assert.equal(again.get(0, K, "v", ""), "first", "the data on disk agrees with its mark");
});

test("restore writes to the disk at once, only after the writes in flight; a store whose mark was never set is wiped when opened", async () => {
  const dir = tempStoreDir();
  const b = EmbeddedStateBackend.open(dir);
  b.put(0, K, "v", "", 1);
  b.takeChanges();
  assert.throws(() => b.restore([]), /still being written/);
  b.persist(1);
  await b.flushed();
  b.restore([
    { key: entryKey(3, "v", "", K), value: "3" },
    { key: entryKey(0, "v", "", K), value: null },
    { key: entryKey(3, STATE.eventTimers, "5:", K), value: "1" },
  ]);
  assert.equal(b.get(0, K, "v", ""), undefined);
  assert.deepEqual(b.size(), { entries: 1, timers: 1, bytes: entryKey(3, "v", "", K).length + 1 + entryKey(3, STATE.eventTimers, "5:", K).length + 1 });
  b.setMark(9, 120);
  await b.close();
  const again = EmbeddedStateBackend.open(dir);
  assert.deepEqual(again.stored, { marker: 9, offset: 120 });
  assert.equal(again.nextTimer("event"), 5);
  await again.wipe();
  again.restore([{ key: entryKey(4, "v", "", K), value: "4" }]);
  await again.close();
  const unmarked = openEmbedded(dir);
  assert.equal(unmarked.stored, null);
  assert.equal(unmarked.get(4, K, "v", ""), undefined, "restored without a mark: of unknown standing, wiped");
  assert.equal(unmarked.empty, true);
});

test("keys longer than lmdb allows are stored by hash and come back whole, in reads, scans and timers", async () => {
  const dir = tempStoreDir();
  const long = JSON.stringify("k".repeat(3_000) + "\u2603");
  const b = EmbeddedStateBackend.open(dir);
  b.put(7, long, "v", "", { big: true });
  b.registerTimer("event", 7, long, "w", 11);
  b.takeChanges();
  b.persist(1);
  await b.close();
  const again = openEmbedded(dir);
  assert.deepEqual(again.get(7, long, "v", ""), { big: true });
  assert.deepEqual(
    sorted(again.entriesInKeyGroups(7, 8)).map((e) => e.key),
    sorted([
      { key: entryKey(7, "v", "", long), value: "" },
      { key: entryKey(7, STATE.eventTimers, "11:w", long), value: "" },
    ]).map((e) => e.key),
  );
  assert.deepEqual(again.pollTimer("event", 100), { ts: 11, keyGroup: 7, key: long, namespace: "w" });
});

test("a store directory held by another live process is refused; a lock left by a dead one is taken over", async () => {
  const dir = tempStoreDir();
  writeFileSync(join(dir, "sage.lock"), String(process.ppid));
  assert.throws(
    () => EmbeddedStateBackend.open(dir),
    (err: unknown) => err instanceof StoreBusyError && err.pid === process.ppid && err.code === "STATE_STORE_BUSY",
  );
  const dead = spawnSync(process.execPath, ["-e", ""]).pid;
  writeFileSync(join(dir, "sage.lock"), String(dead));
  const b = openEmbedded(dir);
  assert.equal(b.stored, null);
});

test("a data file cut short is refused, not mapped; a store whose opening killed a process is discarded by the next one", async () => {
  const dir = tempStoreDir();
  const b = EmbeddedStateBackend.open(dir);
  for (let i = 0; i < 20_000; i++) b.put(i % 128, JSON.stringify(i), "v", "", i);
  b.takeChanges();
  b.persist(1);
  await b.close();
  const file = join(dir, "data", "data.mdb");
  truncateSync(file, Math.floor(statSync(file).size / 3 / 4096) * 4096);
  assert.throws(() => EmbeddedStateBackend.open(dir), StoreDamagedError);
  // As if a process had died opening it (lmdb crashes on a file like this one): the next open starts empty.
  writeFileSync(file, "not an lmdb file ".repeat(1_000));
  const dead = spawnSync(process.execPath, ["-e", ""]).pid;
  writeFileSync(join(dir, "sage.opening"), String(dead));
  const again = openEmbedded(dir);
  assert.equal(again.stored, null);
  assert.equal(again.empty, true);
});
