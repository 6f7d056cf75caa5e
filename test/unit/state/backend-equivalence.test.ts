/**
 * The embedded backend against the in-memory one, driven by the same seeded random operations
 * (state and timer writes, reads, records committed and aborted, units taken, persisted, discarded,
 * restored, reopened from disk): every answer and every changelog must be the same.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { InMemoryStateBackend } from "../../../activities/state/backend.js";
import type { EmbeddedStateBackend } from "../../../activities/state/embedded-backend.js";
import type { ChangelogEntry } from "../../../activities/state/keyed-operator.js";
import { random } from "./harness.js";
import { openEmbedded, tempStoreDir } from "./backends.js";

const sorted = (entries: Iterable<ChangelogEntry>): ChangelogEntry[] => [...entries].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));

for (const seed of [1, 2, 3]) {
  test(`seed ${seed}: the embedded backend answers as the in-memory one through 3,000 random operations`, async () => {
    const rand = random(seed);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
    const keys = Array.from({ length: 12 }, (_, i) => JSON.stringify(`k${i}`));
    const names = ["a", "b", "$w"];
    const spaces = ["", "0,10", "10,20"];
    let dir = tempStoreDir();
    const memory = new InMemoryStateBackend();
    let embedded: EmbeddedStateBackend = openEmbedded(dir);
    const changelog: ChangelogEntry[] = [];
    let marker = 0;
    let inRecord = false;
    const both = <T>(what: string, f: (b: InMemoryStateBackend | EmbeddedStateBackend) => T, step: number): T => {
      const m = f(memory);
      const e = f(embedded);
      assert.deepEqual(e, m, `step ${step}: ${what}`);
      return m;
    };
    for (let step = 0; step < 3_000; step++) {
      const kg = Math.floor(rand() * 4);
      const key = pick(keys);
      const name = pick(names);
      const ns = pick(spaces);
      const r = rand();
      if (r < 0.2) both("put", (b) => b.put(kg, key, name, ns, { n: step }), step);
      else if (r < 0.3) both("append", (b) => b.append(kg, key, `${name}l`, ns, step), step);
      else if (r < 0.38) both("remove", (b) => b.remove(kg, key, name, ns), step);
      else if (r < 0.5) both("get", (b) => [b.get(kg, key, name, ns), b.has(kg, key, `${name}l`, ns)], step);
      else if (r < 0.6) {
        const domain = pick(["event", "processing"] as const);
        const ts = Math.floor(rand() * 50);
        both("registerTimer", (b) => b.registerTimer(domain, kg, key, ns, ts), step);
      } else if (r < 0.64) {
        const ts = Math.floor(rand() * 50);
        both("deleteTimer", (b) => b.deleteTimer("event", kg, key, ns, ts), step);
      } else if (r < 0.72) {
        const upTo = Math.floor(rand() * 60);
        both("pollTimer", (b) => [b.nextTimer("event"), b.pollTimer("event", upTo), b.nextTimer("processing")], step);
      } else if (r < 0.8) {
        const commit = rand() < 0.7;
        if (inRecord) both(commit ? "commitRecord" : "abortRecord", (b) => (commit ? b.commitRecord() : b.abortRecord()), step);
        else both("beginRecord", (b) => b.beginRecord(), step);
        inRecord = !inRecord;
      } else if (r < 0.9 && !inRecord) {
        both("unitChanges", (b) => b.unitChanges(), step);
        if (rand() < 0.75) {
          changelog.push(...both("takeChanges", (b) => b.takeChanges(), step));
          embedded.persist(++marker);
          if (rand() < 0.3) await embedded.flushed();
        } else both("discardUnit", (b) => b.discardUnit(), step);
      } else if (r < 0.93 && !inRecord) {
        // A restart: the unit is lost; the store reopens from its disk at its last persisted marker.
        both("discardUnit", (b) => b.discardUnit(), step);
        await embedded.close();
        embedded = openEmbedded(dir);
        assert.equal(embedded.stored?.marker ?? 0, marker, `step ${step}: reopened at the last persisted marker`);
      } else if (r < 0.95 && !inRecord) {
        // A cold restore of the whole changelog into fresh backends.
        both("discardUnit", (b) => b.discardUnit(), step);
        await embedded.close();
        dir = tempStoreDir();
        embedded = openEmbedded(dir);
        const cold = new InMemoryStateBackend();
        cold.restore(changelog);
        embedded.restore(changelog);
        embedded.setMark(marker, changelog.length);
        assert.deepEqual(sorted(cold.entriesInKeyGroups(0, 8)), sorted(memory.entriesInKeyGroups(0, 8)), `step ${step}: the changelog holds the state`);
      }
      if (step % 500 === 0) {
        both("size", (b) => b.size(), step);
        both("entries", (b) => sorted(b.entriesInKeyGroups(0, 8)), step);
      }
    }
    both("size", (b) => b.size(), -1);
    both("entries", (b) => sorted(b.entriesInKeyGroups(0, 8)), -1);
  });
}
