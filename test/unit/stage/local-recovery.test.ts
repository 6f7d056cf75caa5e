/**
 * Local recovery of embedded stores through `KeyedStateHost`, over a changelog kept in memory: a
 * store reopened at the committed marker is served at once, one behind replays only the tail from
 * its stored offset, and one ahead, missing, or with local recovery off is rebuilt; each logged.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { statSync, truncateSync } from "node:fs";
import { join } from "node:path";
import { pino } from "pino";
import type { ConsumedMessage, KafkaClient } from "../../../connectors/kafka/client.js";
import type { KafkaSinkHost } from "../../../connectors/kafka/sink.js";
import { KeyedStateHost, type KeyedStateOptions } from "../../../activities/stage/keyed-state.js";
import type { StateBackend } from "../../../activities/state/backend.js";
import { tempStoreDir } from "../state/backends.js";

const CHANGELOG = "job.changelog.op";
const K = (n: number): string => JSON.stringify(`k${n}`);

/** A one-partition changelog in memory, read the way `KafkaClient.readToEnd` reads it. */
class MemoryChangelog {
  readonly log: Array<{ key: string; value: string | null }> = [];
  readonly reads: Array<number | undefined> = [];

  client(): KafkaClient {
    const read = (topic: string, partitions?: readonly number[], from?: ReadonlyMap<number, number>) => {
      assert.equal(topic, CHANGELOG);
      assert.deepEqual(partitions, [0]);
      const start = from?.get(0) ?? 0;
      this.reads.push(from?.get(0));
      return Promise.resolve(
        this.log.slice(start).map((m, i): ConsumedMessage & { partition: number } => ({
          offset: String(start + i),
          key: Buffer.from(m.key),
          value: m.value === null ? null : Buffer.from(m.value),
          headers: {},
          timestamp: "0",
          partition: 0,
        })),
      );
    };
    const admin = () =>
      Promise.resolve({
        partitionOffsets: () => Promise.resolve([{ partition: 0, low: "0", high: String(this.log.length) }]),
        close: () => Promise.resolve(),
      });
    return { readToEnd: read, admin } as unknown as KafkaClient;
  }
}

/** A host as a worker process has it, and the log lines it wrote. */
function worker(changelog: MemoryChangelog, options: KeyedStateOptions) {
  const lines: Array<{ msg: string; recovery?: string; reason?: string; entries?: number; from?: number }> = [];
  const logger = pino({ level: "info" }, { write: (line: string) => lines.push(JSON.parse(line) as (typeof lines)[number]) });
  const sink = { client: changelog.client() } as unknown as KafkaSinkHost;
  return { host: new KeyedStateHost(() => sink, logger, options), lines };
}

/** One committed unit: sets counts, writes the changes to the changelog, then tells the host. */
async function unit(host: KeyedStateHost, changelog: MemoryChangelog, marker: number, counts: Record<number, number>): Promise<StateBackend> {
  const { backend } = await host.open(CHANGELOG, 0, marker);
  for (const [k, v] of Object.entries(counts)) backend.put(1, K(Number(k)), "count", "", v);
  for (const change of backend.unitChanges()) changelog.log.push(change);
  backend.takeChanges();
  host.committed(CHANGELOG, 0, Math.max(marker, 0) + 1);
  return backend;
}

test("embedded stores: current on reopen, the tail replayed when behind, rebuilt when ahead or when local recovery is off", async () => {
  const dir = tempStoreDir();
  const options: KeyedStateOptions = { backend: "embedded", dir, localRecovery: true };
  const changelog = new MemoryChangelog();

  // A first worker runs units 1 and 2; its store learns the changelog's end before unit 2.
  const first = worker(changelog, options);
  await unit(first.host, changelog, -1, { 1: 10, 2: 20 });
  const afterUnit1 = changelog.log.length;
  await unit(first.host, changelog, 1, { 1: 11 });
  await first.host.close();
  assert.deepEqual(changelog.reads, [], "a job's first units read no changelog");

  // A restart on the same disk at marker 2: served at once.
  const second = worker(changelog, options);
  const current = await second.host.open(CHANGELOG, 0, 2);
  assert.equal(current.restored, undefined);
  assert.equal(current.backend.get(1, K(1), "count", ""), 11);
  assert.equal(current.backend.get(1, K(2), "count", ""), 20);
  assert.equal(second.lines.find((l) => l.recovery)?.recovery, "current");
  await second.host.close();

  // Meanwhile another worker committed units 3 and 4: a restart replays from the offset noted after unit 1.
  changelog.log.push({ key: "00001|count||" + K(3), value: "30" }, { key: "00001|count||" + K(2), value: null }, { key: "00001|count||" + K(1), value: "12" });
  const third = worker(changelog, options);
  const tail = await third.host.open(CHANGELOG, 0, 4);
  assert.equal(changelog.reads.at(-1), afterUnit1, "read from the stored offset");
  assert.equal(tail.restored?.entries, changelog.log.length - afterUnit1);
  const tailLine = third.lines.find((l) => l.recovery);
  assert.equal(tailLine?.recovery, "tail");
  assert.equal(tailLine?.from, afterUnit1);
  assert.equal(tail.backend.get(1, K(1), "count", ""), 12);
  assert.equal(tail.backend.get(1, K(2), "count", ""), undefined);
  assert.equal(tail.backend.get(1, K(3), "count", ""), 30);
  assert.deepEqual(tail.backend.size().entries, 2);
  await third.host.close();

  // A committed marker behind the store's (the store is of a later state): wiped and rebuilt.
  const fourth = worker(changelog, options);
  const ahead = await fourth.host.open(CHANGELOG, 0, 3);
  assert.equal(changelog.reads.at(-1), undefined, "read from the beginning");
  assert.deepEqual(
    { recovery: fourth.lines.at(-1)?.recovery, reason: fourth.lines.at(-1)?.reason },
    { recovery: "rebuilt", reason: "the store is ahead of the changelog" },
  );
  assert.equal(ahead.restored?.entries, changelog.log.length);
  await fourth.host.close();

  // Local recovery off: the store is rebuilt even at the same marker.
  const fifth = worker(changelog, { ...options, localRecovery: false });
  const off = await fifth.host.open(CHANGELOG, 0, 3);
  assert.deepEqual({ recovery: fifth.lines.at(-1)?.recovery, reason: fifth.lines.at(-1)?.reason }, { recovery: "rebuilt", reason: "no store" });
  assert.equal(off.backend.get(1, K(3), "count", ""), 30);
  await fifth.host.close();

  // No marker committed (a new job): whatever is on disk is not its state.
  const sixth = worker(changelog, options);
  const fresh = await sixth.host.open(CHANGELOG, 0, -1);
  assert.equal(fresh.backend.size().entries, 0);
  await sixth.host.close();
});

test("the memory backend still rebuilds from the changelog whenever its copy is not current", async () => {
  const changelog = new MemoryChangelog();
  const first = worker(changelog, { backend: "memory", dir: tempStoreDir(), localRecovery: true });
  await unit(first.host, changelog, -1, { 1: 1 });
  const second = worker(changelog, { backend: "memory", dir: tempStoreDir(), localRecovery: true });
  const opened = await second.host.open(CHANGELOG, 0, 1);
  assert.equal(opened.restored?.entries, 1);
  assert.equal(opened.backend.get(1, K(1), "count", ""), 1);
  assert.equal(second.lines.at(-1)?.msg, "keyed state rebuilt from the changelog");
});

test("an embedded store whose data file was cut short is removed and rebuilt, not mapped", async () => {
  const dir = tempStoreDir();
  const options: KeyedStateOptions = { backend: "embedded", dir, localRecovery: true };
  const changelog = new MemoryChangelog();
  for (let i = 0; i < 20_000; i++) changelog.log.push({ key: "00001|count||" + K(i), value: String(i) });
  const first = worker(changelog, options);
  await first.host.open(CHANGELOG, 0, 1);
  await first.host.close();
  const file = join(dir, CHANGELOG, "0", "data", "data.mdb");
  truncateSync(file, Math.floor(statSync(file).size / 3 / 4096) * 4096);
  const second = worker(changelog, options);
  const opened = await second.host.open(CHANGELOG, 0, 1);
  assert.ok(second.lines.some((l) => l.msg.startsWith("keyed state store cannot be opened")));
  assert.deepEqual({ recovery: second.lines.at(-1)?.recovery, reason: second.lines.at(-1)?.reason }, { recovery: "rebuilt", reason: "no store" });
  assert.equal(opened.backend.get(1, K(19_999), "count", ""), 19_999);
  await second.host.close();
});
