/**
 * Local recovery of the `embedded` state backend, against the real dev server and broker: the
 * keyed test pipeline runs with `state.backend: embedded`; its worker is killed with SIGKILL
 * mid-window and a new worker process starts on the same `state.dir`. The new worker's log shows
 * each store it opened recovered locally (current at the committed marker, or caught up from the
 * changelog's tail), none rebuilt, and the read_committed windows equal the reference.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { SageClient } from "../../client/sage-client.js";
import keyedPipeline, { BRANCHES } from "../fixtures/keyed-pipeline.js";
import { assertBranches, keyedInput, keyedReference, readBranches } from "../support/keyed-reference.js";
import { REPO, startWorkerProcess, until, type WorkerProcess } from "../support/harness.js";
import { startShim, streamCliEnv, streamConfig, testKafka } from "../support/kafka.js";

const KEYED_FIXTURE = join(REPO, "test", "fixtures", "keyed-pipeline.ts");

/** The keyed-state lines (JSON) of a worker's log. */
function stateLines(
  log: string,
): Array<{ msg: string; recovery?: string; changelog?: string; partition?: number; marker?: number; ms?: number; entries?: number }> {
  return log
    .split("\n")
    .filter((l) => l.startsWith("{") && l.includes('"component":"keyed-state"'))
    .map((l) => JSON.parse(l) as { msg: string });
}

test("embedded state: kill -9 of the worker, a new one on the same state.dir recovers locally; windows identical to the reference", async (tc) => {
  const input = keyedInput(1_500, 29);
  const expected = keyedReference(input);
  const tag = `kloc-${process.pid}-${Date.now()}`;
  const t = { input: `${tag}.in`, out: `${tag}.out`, dlq: `${tag}.dlq` };
  const kafka = testKafka();
  const admin = await kafka.admin();
  try {
    // The test's event time is in the past: no time-based retention may delete it.
    for (const topic of [t.input, t.dlq, ...BRANCHES.map((b) => `${t.out}.${b}`)]) await admin.ensureTopic(topic, 1, { "retention.ms": "-1" });
  } finally {
    await admin.close();
  }
  const env = { KEYED_IN: t.input, KEYED_OUT: t.out };
  Object.assign(process.env, env);
  const config = streamConfig("kloc", t.dlq, { "execution.parallelism": 2, "kafka.max-batch-records": 50 });
  const stateDir = join(config.dir, "state");
  const cli = { ...streamCliEnv(config, { env }), SAGE_STATE_BACKEND: "embedded", SAGE_STATE_DIR: stateDir, SAGE_LOG_LEVEL: "info" };
  const client = await SageClient.connect({ config });
  let first: WorkerProcess | null = await startWorkerProcess(KEYED_FIXTURE, config, client, cli);
  let second: WorkerProcess | null = null;
  const { job, shim } = await startShim(client, keyedPipeline, config, tag);
  const produce = async (from: number, to: number): Promise<void> => {
    const producer = await kafka.producer();
    await producer.send(
      t.input,
      input.slice(from, to).map((e) => ({ key: e.k, value: JSON.stringify(e), timestamp: String(e.ts) })),
    );
    await producer.close();
  };
  try {
    await produce(0, 800);
    // A store records its first marker once its first unit has committed, in a disk write in the
    // background (milliseconds): killed before that, it is rebuilt from the changelog, rightly, and
    // this test is about the stores that exist. So each keyed operator of each workflow has run a
    // unit first, and the kill comes a second later.
    const keyed = BRANCHES.filter((b) => b !== "late");
    await until("part of the input through the rolling reduce, and a unit through each keyed operator of each workflow", async () => {
      const p = await job.progress();
      const everyStore = p.workflows.length > 0 && p.workflows.every((w) => w !== null && keyed.every((op) => (w.counts[op]?.in ?? 0) > 0));
      return (p.counts["rolling"]?.in ?? 0) >= 300 && everyStore ? p : undefined;
    });
    await new Promise((r) => setTimeout(r, 1_000));
    first.child.kill("SIGKILL");
    first = null;
    assert.ok(existsSync(stateDir), `the first worker kept its stores under ${stateDir}`);
    await produce(800, input.length);
    second = await startWorkerProcess(KEYED_FIXTURE, config, client, cli);
    const read = (b: string): Promise<unknown[]> =>
      kafka.readAll(`${t.out}.${b}`, { idleTimeoutMs: 1_500 }).then((ms) => ms.map((m) => JSON.parse(m.value!.toString("utf8")) as unknown));
    await readBranches(read, expected, until);
    await new Promise((r) => setTimeout(r, 2_000));
    assertBranches(Object.fromEntries(await Promise.all(BRANCHES.map(async (b) => [b, await read(b)] as const))), expected, BRANCHES);

    const opened = stateLines(second.log()).filter((l) => l.recovery !== undefined);
    for (const l of opened) tc.diagnostic(`${l.changelog}#${l.partition}: ${l.recovery} at marker ${l.marker}, ${l.entries ?? 0} entries, ${l.ms} ms`);
    assert.ok(opened.length > 0, `the second worker opened stores from the disk:\n${second.log().slice(-3000)}`);
    for (const l of opened) assert.ok(l.recovery === "current" || l.recovery === "tail", `recovered locally, not rebuilt: ${JSON.stringify(l)}`);
    const stores = new Set(opened.map((l) => `${l.changelog}#${l.partition}`));
    assert.equal(opened.length, stores.size, "each store was recovered once, and then served as it is");
  } finally {
    await shim.stop();
    await first?.stop();
    await second?.stop();
    await client.close();
  }
});
