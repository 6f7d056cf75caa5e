/**
 * `whatif.retain`'s copy of a streaming job's input: batches kept per source partition, cut to the
 * newest within the size bound and to those within the age bound; read back as Kafka gave them.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, utimesSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { encodeBatch } from "../../connectors/kafka/batch-codec.js";
import type { ConsumedMessage } from "../../connectors/kafka/client.js";
import { readRetained, retainBatch, retains } from "../../connectors/kafka/retained-input.js";

const message = (offset: number): ConsumedMessage => ({
  offset: String(offset),
  key: Buffer.from(`k${offset}`),
  value: offset === 3 ? Buffer.from([0xff, 0xfe]) : Buffer.from(JSON.stringify({ n: offset })),
  headers: offset === 1 ? { h: "v" } : {},
  timestamp: String(1000 + offset),
});
const batch = (from: number, to: number): Uint8Array => encodeBatch(Array.from({ length: to - from + 1 }, (_, i) => message(from + i)));

test("retained batches read back as consumed; the size bound keeps the newest", async () => {
  const dir = mkdtempSync(join(tmpdir(), "retain-"));
  assert.equal(retains({ bytes: 0, ageMs: 0 }), false);
  const size = batch(0, 2).byteLength;
  const bounds = { bytes: 2 * size + 40, ageMs: 0 };
  await retainBatch(dir, { topic: "in.q", partition: 0, from: 0, to: 2 }, batch(0, 2), bounds);
  await retainBatch(dir, { topic: "in.q", partition: 0, from: 3, to: 5 }, batch(3, 5), bounds);
  const all = await readRetained(dir, "in.q", 0, 0, 100);
  assert.equal(all.first, 0);
  assert.deepEqual(all.records, [0, 1, 2, 3, 4, 5].map(message));
  // A third batch: the oldest goes, the two newest stay; a retried unit rewrites its own file.
  await retainBatch(dir, { topic: "in.q", partition: 0, from: 6, to: 8 }, batch(6, 8), bounds);
  await retainBatch(dir, { topic: "in.q", partition: 0, from: 6, to: 8 }, batch(6, 8), bounds);
  const cut = await readRetained(dir, "in.q", 0, 4, 7);
  assert.equal(cut.first, 3);
  assert.deepEqual(cut.records, [4, 5, 6].map(message));
  assert.deepEqual((await readRetained(dir, "in.q", 1, 0, 10)).first, null);
});

test("the age bound drops batches written before it", async () => {
  const dir = mkdtempSync(join(tmpdir(), "retain-"));
  const bounds = { bytes: 0, ageMs: 60_000 };
  const now = Date.now();
  await retainBatch(dir, { topic: "t", partition: 2, from: 10, to: 11 }, batch(10, 11), bounds, now);
  const at = join(dir, "t", "2");
  const [old] = readdirSync(at);
  utimesSync(join(at, old!), new Date(now - 120_000), new Date(now - 120_000));
  await retainBatch(dir, { topic: "t", partition: 2, from: 12, to: 13 }, batch(12, 13), bounds, now);
  const left = await readRetained(dir, "t", 2, 0, 100);
  assert.equal(left.first, 12);
  assert.deepEqual(
    left.records.map((m) => Number(m.offset)),
    [12, 13],
  );
});
