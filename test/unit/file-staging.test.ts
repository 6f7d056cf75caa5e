/** Unit tests of the file sink's commit: short writes are finished, a failed publish leaves nothing beside the target. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import type { FileHandle } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { publishShards, writeFully } from "../../connectors/file/staging.js";

/** A file handle whose writes take at most `max` bytes each, and fail with ENOSPC once `room` bytes are written. */
function shortWrites(max: number, room = Infinity): { handle: FileHandle; written: number[] } {
  const written: number[] = [];
  const write = async (data: Uint8Array, offset: number, length: number) => {
    if (written.length >= room) throw Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC" });
    const n = Math.min(max, length, room - written.length);
    written.push(...data.subarray(offset, offset + n));
    return { bytesWritten: n, buffer: data };
  };
  return { handle: { write } as unknown as FileHandle, written };
}

test("writeFully finishes a write the file system took only part of", async () => {
  const { handle, written } = shortWrites(3);
  const data = Buffer.from("0123456789abcdef");
  await writeFully(handle, data);
  assert.equal(Buffer.from(written).toString(), "0123456789abcdef");
});

test("writeFully fails when the disk fills after a short write, instead of returning as if it had written everything", async () => {
  const { handle, written } = shortWrites(64, 10);
  await assert.rejects(writeFully(handle, Buffer.from("0123456789abcdef")), /ENOSPC/);
  assert.equal(written.length, 10);
});

test("a publish that fails before its rename leaves no temporary file and no target", async () => {
  const dir = mkdtempSync(join(tmpdir(), "sage-staging-"));
  const shards = join(dir, "staging", "out");
  mkdirSync(shards, { recursive: true });
  writeFileSync(join(shards, "s0-000000.jsonl"), '{"n":1}\n');
  // A shard that cannot be read (a directory) fails the publish after its temporary file was written to.
  mkdirSync(join(shards, "s0-000001.jsonl"));
  const target = join(dir, "out", "records.jsonl");
  await assert.rejects(publishShards(shards, target, "t"), /EISDIR/);
  assert.equal(existsSync(target), false);
  assert.deepEqual(readdirSync(join(dir, "out")), []);
});

test("a publish writes the shards in name order", async () => {
  const dir = mkdtempSync(join(tmpdir(), "sage-staging-"));
  const shards = join(dir, "staging", "out");
  mkdirSync(shards, { recursive: true });
  writeFileSync(join(shards, "s0-000001.jsonl"), '{"n":2}\n');
  writeFileSync(join(shards, "s0-000000.jsonl"), '{"n":1}\n');
  const target = join(dir, "records.jsonl");
  await publishShards(shards, target, "t");
  assert.equal(readFileSync(target, "utf8"), '{"n":1}\n{"n":2}\n');
});
