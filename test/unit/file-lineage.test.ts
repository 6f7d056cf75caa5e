/**
 * Unit tests of file-output lineage: line positions round-trip through their compact encoding,
 * the line reader gives each line's byte range, publishing counts each shard's lines, and a line
 * of the published file is found in its shard; a sidecar that does not match its published shard
 * (from an attempt that did not write it) is not used.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { findLine, keepSinkLineage, LinePositions, positionAt, sinkLineageDir, writeSidecar } from "../../connectors/file/line-lineage.js";
import { publishShards } from "../../connectors/file/staging.js";
import { readLines } from "../../connectors/file/line-reader.js";
import type { ShardLineage } from "../../core/plan/lineage.js";

test("line positions round-trip: byte ranges, indexes and lines with no single source", () => {
  const p = new LinePositions();
  const written: Array<[number, number] | null> = [[0, 17], [18, 4000], [18, 4000], null, [100_000, 0], [123_456_789, 12]];
  for (const w of written) p.add(w ? w[0] : -1, w ? w[1] : 0);
  assert.equal(p.lines, written.length);
  for (const [k, w] of written.entries()) assert.deepEqual(positionAt(p.toString(), k), w ? { start: w[0], length: w[1] } : null);
  const indexes = new LinePositions();
  for (const i of [5, 6, 9, 9, 30]) indexes.add(i, -1);
  assert.equal(indexes.toString(), "5,1,3,0,l");
  assert.deepEqual(positionAt(indexes.toString(), 4), { start: 30, length: -1 });
});

test("the line reader gives each line's first byte and length, a split's lines included once", async () => {
  const dir = mkdtempSync(join(tmpdir(), "sage-lines-"));
  const path = join(dir, "in.txt");
  const text = "alpha\r\nbé\n\nlast line without newline";
  writeFileSync(path, text);
  const bytes = Buffer.from(text);
  const seen: string[] = [];
  for (const [start, end] of [
    [0, 9],
    [9, bytes.length],
  ] as const)
    for await (const lines of readLines(path, start, end))
      for (const line of lines) {
        // The range holds the line's text (a \r before the \n is in the range, not in the text).
        assert.equal(
          bytes
            .subarray(line.offset, line.offset + line.bytes)
            .toString()
            .replace(/\r$/, ""),
          line.text,
        );
        seen.push(line.text);
      }
  assert.deepEqual(seen, ["alpha", "bé", "", "last line without newline"]);
});

/** A sidecar of `lines` lines, each from source byte 10*k. */
function sidecar(shard: string, lines: number, attempt: number): ShardLineage {
  const p = new LinePositions();
  for (let k = 0; k < lines; k++) p.add(10 * k, 9);
  return {
    stage: "s0",
    shard,
    split: null,
    workflowId: "wf",
    runId: "run",
    attempt,
    at: new Date(0).toISOString(),
    source: { kind: "file", path: "/in" },
    lines,
    positions: p.toString(),
  };
}

test("a published line is found in its shard; a sidecar that does not match its shard is left out", async () => {
  const dataDir = mkdtempSync(join(tmpdir(), "sage-lineage-"));
  const staging = join(dataDir, "staging", "sink");
  mkdirSync(staging, { recursive: true });
  // Shard a: 3 lines and its sidecar; b: 2 lines, but the sidecar of an attempt that wrote 4; c: 1 line, no sidecar.
  writeFileSync(join(staging, "a.jsonl"), "1\n2\n3\n");
  await writeSidecar(join(staging, "a.jsonl"), sidecar("a", 3, 2));
  writeFileSync(join(staging, "b.jsonl"), "4\n5\n");
  await writeSidecar(join(staging, "b.jsonl"), sidecar("b", 4, 1));
  writeFileSync(join(staging, "c.jsonl"), "6\n");
  const target = join(dataDir, "out.jsonl");
  const shards = await publishShards(staging, target, "t");
  assert.deepEqual(shards, [
    { name: "a.jsonl", lines: 3 },
    { name: "b.jsonl", lines: 2 },
    { name: "c.jsonl", lines: 1 },
  ]);
  assert.equal(readFileSync(target, "utf8"), "1\n2\n3\n4\n5\n6\n");
  const dir = sinkLineageDir(dataDir, "p", "job", "sink");
  await keepSinkLineage(staging, dir, { target, node: "sink" }, shards);
  // A retried commit keeps the same.
  await keepSinkLineage(staging, dir, { target, node: "sink" }, shards);

  const third = await findLine(dataDir, "p", "job", target, 3);
  assert.ok(typeof third !== "string");
  assert.equal(third.shard, "a.jsonl");
  assert.equal(third.lineInShard, 2);
  assert.equal(third.lineage?.attempt, 2);
  assert.deepEqual(positionAt(third.lineage.positions, third.lineInShard), { start: 20, length: 9 });
  const fourth = await findLine(dataDir, "p", "job", target, 4);
  assert.ok(typeof fourth !== "string");
  assert.equal(fourth.shard, "b.jsonl");
  assert.equal(fourth.lineage, null);
  const sixth = await findLine(dataDir, "p", "job", target, 6);
  assert.ok(typeof sixth !== "string" && sixth.shard === "c.jsonl" && sixth.lineage === null);
  assert.match(String(await findLine(dataDir, "p", "job", target, 7)), /has 6 line\(s\) from job job; there is no line 7/);
  assert.match(String(await findLine(dataDir, "p", "job", join(dataDir, "other.jsonl"), 1)), /no file sink of job job wrote/);
  assert.match(String(await findLine(dataDir, "p", "other-job", target, 1)), /kept no file lineage/);
});
