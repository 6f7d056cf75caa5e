/** Unit tests of the exactly-once append of a redrive job's output to a published file. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { appendShards } from "../../connectors/file/append.js";

test("staged shards are appended once, in shard order, however often the commit is retried", async () => {
  const dir = mkdtempSync(join(tmpdir(), "sage-append-"));
  const target = join(dir, "out.jsonl");
  writeFileSync(target, '{"n":1}\n{"n":2}\n');
  const shards = join(dir, "staging", "out");
  mkdirSync(shards, { recursive: true });
  writeFileSync(join(shards, "s0-1.jsonl"), '{"n":4}\n');
  writeFileSync(join(shards, "s0-0.jsonl"), '{"n":3}\n');
  await appendShards(shards, target, "t");
  const once = '{"n":1}\n{"n":2}\n{"n":3}\n{"n":4}\n';
  assert.equal(readFileSync(target, "utf8"), once);
  // A retried commit (its first attempt renamed, then died before its marker) writes the same bytes.
  await appendShards(shards, target, "t");
  assert.equal(readFileSync(target, "utf8"), once);
  assert.deepEqual(
    readdirSync(dir).filter((n) => n.endsWith(".tmp")),
    [],
  );
});

test("appending to an output that does not exist yet creates it", async () => {
  const dir = mkdtempSync(join(tmpdir(), "sage-append-"));
  const shards = join(dir, "staging", "out");
  mkdirSync(shards, { recursive: true });
  writeFileSync(join(shards, "s0-0.jsonl"), '{"n":3}\n');
  await appendShards(shards, join(dir, "new", "out.jsonl"), "t");
  assert.equal(readFileSync(join(dir, "new", "out.jsonl"), "utf8"), '{"n":3}\n');
});
