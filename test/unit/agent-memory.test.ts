/**
 * The agent memory on its LMDB file: recall by cosine under one key, before a seq; an id remembered
 * again keeps the first; two processes remembering the same ids at once store each id once, and
 * another process sees them all.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AgentMemory } from "../../connectors/vector/agent-memory.js";
import { AgentMemoryError } from "../../core/errors.js";

const memoryFile = (): string => join(mkdtempSync(join(tmpdir(), "sage-memory-")), "memory.mdb");

test("recall gives a key's nearest memories best first, only before the seq asked; an id remembered again keeps the first", async () => {
  const memory = AgentMemory.open(memoryFile(), "w1");
  try {
    assert.equal(await memory.remember({ key: "c1", id: "1", seq: 1, text: "my dog is Rex", vector: [1, 0, 0] }), true);
    assert.equal(await memory.remember({ key: "c1", id: "2", seq: 2, text: "I live in Lyon", vector: [0, 1, 0] }), true);
    assert.equal(await memory.remember({ key: "c1", id: "3", seq: 3, text: "Rex is brown", vector: [0.9, 0.1, 0] }), true);
    assert.equal(await memory.remember({ key: "c2", id: "1", seq: 1, text: "other conversation", vector: [1, 0, 0] }), true);
    assert.equal(await memory.remember({ key: "c1", id: "1", seq: 9, text: "a retry's copy", vector: [0, 0, 1] }), false);

    const all = await memory.recall({ key: "c1", vector: [1, 0, 0], k: 5 });
    assert.deepEqual(
      all.map((m) => [m.id, m.text, m.writer]),
      [
        ["1", "my dog is Rex", "w1"],
        ["3", "Rex is brown", "w1"],
        ["2", "I live in Lyon", "w1"],
      ],
    );
    assert.ok(Math.abs(all[0]!.score - 1) < 1e-6 && Math.abs(all[2]!.score) < 1e-6);
    assert.deepEqual(
      (await memory.recall({ key: "c1", vector: [1, 0, 0], k: 1, before: 3 })).map((m) => m.id),
      ["1"],
    );
    assert.deepEqual(
      (await memory.recall({ key: "c1", vector: [0, 1, 0], k: 5, before: 2 })).map((m) => m.id),
      ["1"],
    );
    assert.deepEqual(await memory.recall({ key: "c3", vector: [1, 0, 0], k: 5 }), []);
    assert.deepEqual(
      memory.memories("c1").map((m) => [m.key, m.id, m.seq, m.text]),
      [
        ["c1", "1", 1, "my dog is Rex"],
        ["c1", "2", 2, "I live in Lyon"],
        ["c1", "3", 3, "Rex is brown"],
      ],
    );
    assert.equal(memory.count("c1"), 3);
    assert.equal(memory.count(), 4);

    await assert.rejects(memory.recall({ key: "c1", vector: [1, 0], k: 1 }), AgentMemoryError);
    await assert.rejects(memory.remember({ key: "c1", id: "4", seq: 4, text: "", vector: [1, 0] }), AgentMemoryError);
    await assert.rejects(memory.remember({ key: "a\u001fb", id: "1", seq: 1, text: "", vector: [1] }), AgentMemoryError);
  } finally {
    await memory.close();
  }
});

/** Starts the writer fixture on `path` and resolves once it is ready; `stored` gives what it printed after "go". */
async function writer(path: string, name: string, n: number): Promise<{ go(): void; stored: Promise<number> }> {
  const child = spawn(process.execPath, ["--import", "tsx", "test/fixtures/agent-memory-writer.ts", path, name, String(n)], {
    stdio: ["pipe", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  child.stderr.on("data", (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number>((done) => child.once("exit", (code) => done(code ?? 1)));
  await new Promise<void>((ready, fail) => {
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
      if (out.startsWith("ready\n")) ready();
    });
    void exited.then((code) => fail(new Error(`writer ${name} exited (${code}) before it was ready: ${err}`)));
  });
  return {
    go: () => child.stdin.end("go\n"),
    stored: exited.then((code) => {
      assert.equal(code, 0, `writer ${name}: ${err}`);
      return Number(out.split("\n")[1]);
    }),
  };
}

test("two processes remembering the same 300 ids at once store each id once; a third process recalls them all", async () => {
  const path = memoryFile();
  const n = 300;
  const [a, b] = await Promise.all([writer(path, "A", n), writer(path, "B", n)]);
  a.go();
  b.go();
  const [byA, byB] = await Promise.all([a.stored, b.stored]);
  assert.equal(byA + byB, n, `A stored ${byA}, B ${byB}: together exactly one write per id`);

  const memory = AgentMemory.open(path, "reader");
  try {
    assert.equal(memory.count("race"), n);
    const recalled = await memory.recall({ key: "race", vector: [1, 0, 0], k: n + 10 });
    assert.equal(recalled.length, n);
    assert.equal(new Set(recalled.map((m) => m.id)).size, n);
    const writers = new Map<string, number>();
    for (const m of recalled) writers.set(m.writer, (writers.get(m.writer) ?? 0) + 1);
    assert.equal(writers.get("A") ?? 0, byA, "each memory names the process that stored it");
    assert.equal(writers.get("B") ?? 0, byB);
    for (const m of recalled) assert.equal(m.text, `memory ${m.seq} by ${m.writer}`, "a memory is the one write that stored it, whole");
  } finally {
    await memory.close();
  }
});
