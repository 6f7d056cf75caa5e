/**
 * The agent memory shared by two `sage worker` processes on one task queue, on the real dev server
 * and the real local models (the embeddings decide what is recalled, so the test uses the model the
 * example runs on, not the deterministic provider). Both workers poll; the first session's stage
 * activity fails once after every turn was remembered, and the retry (on either worker) stores none
 * of them again. The worker that remembered the session then leaves, and the other runs the later
 * turns: each recalls, first, the turn the first worker remembered that answers it. The memory file
 * then holds each turn once, named by the worker that ran it.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { SageClient } from "../../client/sage-client.js";
import { AgentMemory } from "../../connectors/vector/agent-memory.js";
import { startModelServerProcess, type ModelServerProcess } from "../../models/server-process.js";
import { REPO, cliEnv, readJsonl, startWorkerProcess, testConfig, type WorkerProcess } from "../../test/support/harness.js";
import pipeline, { FAULT_FILE_ENV } from "../../test/fixtures/agent-memory.js";
import type { Reply, Turn } from "./pipeline.js";

const FIXTURE = join(REPO, "test", "fixtures", "agent-memory.ts");
const TURNS = join(REPO, "examples", "agent-memory", "turns.jsonl");
const LATER = join(REPO, "examples", "agent-memory", "later.jsonl");
/** The earlier turn that answers each later one (`conversation/turn`). */
const ANSWERED_BY: Record<string, number> = { "ana/4": 1, "ana/5": 3, "ben/4": 2, "ben/5": 3 };

let models: ModelServerProcess;
before(async () => (models = await startModelServerProcess()));
after(async () => models.stop());

const byTurn = (a: Turn, b: Turn): number => (a.conversation < b.conversation ? -1 : a.conversation > b.conversation ? 1 : a.turn - b.turn);

test("turns remembered by one worker are recalled by the other; a retried activity remembers each turn once", async () => {
  const config = testConfig("agent-memory");
  // Either worker may run the first attempt; the marker file lets the fault fire once between them.
  const env = { ...cliEnv(config), SAGE_LLM_BASE_URL: `${models.url}/v1`, [FAULT_FILE_ENV]: join(config.dir, "fault-fired") };
  const client = await SageClient.connect({ config });
  // One after the other: two workers bundling at once on a loaded machine can outlast the poll guard.
  const workers: WorkerProcess[] = [];
  try {
    workers.push(await startWorkerProcess(FIXTURE, config, client, env));
    workers.push(await startWorkerProcess(FIXTURE, config, client, env));
    const first = await client.submit(pipeline, { jobId: "agent-memory-1", params: { input: TURNS, output: join(config.dir, "replies-1.jsonl") } });
    const r1 = await first.result();
    assert.equal(r1.deadLetters, 0);
    assert.ok(existsSync(env[FAULT_FILE_ENV]), "the stage activity failed once after remembering");
    const session = readJsonl<Reply>(r1.outputs.replies!).sort(byTurn);
    const turns = readJsonl<Turn>(TURNS);
    assert.equal(session.length, turns.length);
    const writers = new Set(session.flatMap((r) => r.recalled.map((m) => m.writer)));
    assert.equal(writers.size, 1, `one attempt remembered the session: ${[...writers].join(", ")}`);
    // a: the worker that remembered the session; b: the other.
    const [a, b] = writers.has(workers[0]!.identity) ? [workers[0]!, workers[1]!] : [workers[1]!, workers[0]!];
    assert.ok(writers.has(a.identity), `the session was remembered by ${[...writers].join(", ")}, not by one of the workers`);
    for (const r of session) {
      const what = `${r.conversation}/${r.turn}`;
      assert.equal(r.remembered, false, `${what}: the retry found the turn its failed attempt remembered, and stored it no second time`);
      assert.equal(r.recalled.length, Math.min(2, r.turn - 1), `${what}: recalls its earlier turns`);
      for (const m of r.recalled) {
        assert.ok(m.turn < r.turn, `${what} recalled a later turn ${m.turn}`);
        assert.equal(m.text, turns.find((t) => t.conversation === r.conversation && t.turn === m.turn)?.text, `${what}: recalled from another conversation`);
      }
    }

    // The worker that remembered the session leaves: the later turns are the other's.
    await a.stop();
    const second = await client.submit(pipeline, { jobId: "agent-memory-2", params: { input: LATER, output: join(config.dir, "replies-2.jsonl") } });
    const r2 = await second.result();
    assert.equal(r2.deadLetters, 0);
    const later = readJsonl<Reply>(r2.outputs.replies!).sort(byTurn);
    assert.deepEqual(
      later.map((r) => `${r.conversation}/${r.turn}`),
      Object.keys(ANSWERED_BY),
    );
    for (const r of later) {
      const what = `${r.conversation}/${r.turn} "${r.text}"`;
      assert.equal(r.remembered, true);
      assert.equal(r.recalled[0]?.turn, ANSWERED_BY[`${r.conversation}/${r.turn}`], `${what} recalled ${JSON.stringify(r.recalled)}`);
      assert.equal(r.recalled[0]!.writer, a.identity, `${what}: recalled what the other worker remembered`);
      assert.ok(r.reply.trim().length > 0, `${what}: no reply`);
    }

    const memory = AgentMemory.open(join(config["data-dir"], "agent-memory", "memory.mdb"), "test");
    try {
      for (const conversation of ["ana", "ben"]) {
        assert.deepEqual(
          memory.memories(conversation).map((m) => [m.seq, m.writer]),
          [1, 2, 3, 4, 5].map((n) => [n, n <= 3 ? a.identity : b.identity]),
          `${conversation}: each turn once, by the worker that ran it`,
        );
      }
      assert.equal(memory.count(), 10);
    } finally {
      await memory.close();
    }
  } finally {
    await Promise.all(workers.map((w) => w.stop()));
    await client.close();
  }
});
