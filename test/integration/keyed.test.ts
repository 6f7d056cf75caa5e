/**
 * Keyed state, event time and windows for real: the keyed test pipeline (tumbling with lateness and
 * a late-data side output, sliding, session, count, a rolling reduce, a keyed process with state and
 * event-time timers) as a bounded job read in several splits and as a streaming job through the
 * broker; every branch must equal the plain reference over the same input, in both.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import pipeline, { BRANCHES, type Ev } from "../fixtures/keyed-pipeline.js";
import { assertBranches, FLUSH_KEY, keyedInput, keyedReference, readBranches } from "../support/keyed-reference.js";
import type { OutgoingMessage } from "../../connectors/kafka/client.js";
import { readJsonl, runJob, testConfig, until, useEnv } from "../support/harness.js";
import { runStreaming, streamConfig, testKafka } from "../support/kafka.js";
import { renderStreamProgress } from "../../cli/stream.js";
import { LINEAGE_HEADER, lineageTopicOf, parseLineage, type BatchLineage } from "../../core/plan/lineage.js";

const N = 1_500;

test("bounded: every window, the late output, the rolling reduce and the keyed process equal the reference, over parallel splits", async () => {
  const input = keyedInput(N);
  const expected = keyedReference(input);
  assert.ok(expected.late!.length > 0 && expected.tumbling!.length > 0, "the input has late records and windows");
  const config = testConfig("keyed-bounded", { "execution.parallelism": 2, "execution.split-bytes": 16 * 1024 });
  const out = join(config.dir, "out");
  mkdirSync(out, { recursive: true });
  const file = join(config.dir, "events.jsonl");
  writeFileSync(file, input.map((e) => JSON.stringify(e)).join("\n") + "\n");
  useEnv({ KEYED_IN: undefined, KEYED_OUT: out, KEYED_IDLE_MS: undefined });
  const { result } = await runJob(pipeline, config, { input: file });
  assert.equal(result.phase, "done");
  assert.ok(result.splitsTotal >= 4, `the input was read as ${result.splitsTotal} splits`);
  assertBranches(Object.fromEntries(BRANCHES.map((b) => [b, readJsonl(join(out, `${b}.jsonl`))])), expected, BRANCHES);
  assert.equal(result.counts["rolling"]!.out, N + 1);
});

test("streaming: the same pipeline through repartition and changelog topics gives the same results, exactly once", () => streamingAgainstReference(1, 0));

test("streaming withIdleness: a source partition that never gets a record does not hold the windows back", () => streamingAgainstReference(2, 500));

test("streaming, source-partitioned keyBy: no repartition, a watermark per partition workflow, each partition equals the reference; a record whose Kafka key is not its key is dead-lettered", async () => {
  // Keys a, c, e in partition 0 and b, d in partition 1 (their Kafka key is `k`), each partition flushed by its own last record.
  const partitionOf = (k: string): number => ("bd".includes(k) ? 1 : 0);
  const input = keyedInput(N);
  const byPartition: Ev[][] = [[], []];
  for (const e of input) if (e.k !== FLUSH_KEY) byPartition[partitionOf(e.k)]!.push(e);
  const flush = input[input.length - 1]!;
  byPartition.forEach((events, p) => events.push({ ...flush, id: flush.id + p }));
  // The reference of each partition alone (its watermark is its own), put together.
  const expected: Record<string, string[]> = {};
  for (const events of byPartition) for (const [b, rows] of Object.entries(keyedReference(events))) (expected[b] ??= []).push(...rows);
  for (const rows of Object.values(expected)) rows.sort();
  // A record keyed "a" but sent with Kafka key "x", at an event time already reached (the watermark does not move).
  const stray = { ...byPartition[0]![100]!, id: N + 10, ts: Math.min(...byPartition[0]!.slice(0, 101).map((e) => e.ts)) };
  const sent = byPartition.flatMap((events, p) =>
    events.flatMap((e, i) => [
      { key: e.k, value: JSON.stringify(e), timestamp: String(e.ts), partition: p },
      ...(p === 0 && i === 100 ? [{ key: "x", value: JSON.stringify(stray), timestamp: String(stray.ts), partition: 0 }] : []),
    ]),
  );
  useEnv({ KEYED_SOURCE_PARTITIONED: "1" });
  try {
    const plan = pipelineWith({ KEYED_IN: "in" }).compile({ parallelism: 2, fusion: true }).plan;
    assert.deepEqual(plan.edges, [], "every operator runs in the source's stage");
    await streamingRun({
      partitions: 2,
      sent,
      expected,
      idleMs: 0,
      deadLetters: 1,
      deadLetterReason: new RegExp(`keyBy "by-k" is source-partitioned, but the record's key "${stray.k}" is not its Kafka key \\("x"\\)`),
    });
  } finally {
    useEnv({ KEYED_SOURCE_PARTITIONED: undefined });
  }
});

/** The fixture pipeline compiled with `env` in place. */
function pipelineWith(env: Record<string, string | undefined>): typeof pipeline {
  useEnv(env);
  return pipeline;
}

/**
 * The keyed pipeline as a streaming job over `partitions` source partitions, every record in
 * partition 0 (so the watermark before each is exactly the reference's, once the others count as
 * idle after `idleMs`; without idleness an empty partition would hold every window back).
 */
async function streamingAgainstReference(partitions: number, idleMs: number): Promise<void> {
  const input = keyedInput(N);
  const sent = input.map((e: Ev) => ({ key: e.k, value: JSON.stringify(e), timestamp: String(e.ts), partition: 0 }));
  await streamingRun({ partitions, sent, expected: keyedReference(input), idleMs, deadLetters: 0 });
}

/** Sends `sent` to a fresh input topic of `partitions`, runs the keyed pipeline as a streaming job, and checks every branch against `expected`. */
async function streamingRun(o: {
  partitions: number;
  sent: OutgoingMessage[];
  expected: Record<string, string[]>;
  idleMs: number;
  deadLetters: number;
  deadLetterReason?: RegExp;
}): Promise<void> {
  const { partitions, expected, idleMs } = o;
  const tag = `keyed-${process.pid}-${Date.now()}`;
  const t = { input: `${tag}.in`, out: `${tag}.out`, dlq: `${tag}.dlq` };
  const kafka = testKafka();
  const admin = await kafka.admin();
  try {
    // The test's event time is in the past: no time-based retention may delete it.
    const keep = { "retention.ms": "-1" };
    await admin.ensureTopic(t.input, partitions, keep);
    await admin.ensureTopic(t.dlq, 1);
    for (const b of BRANCHES) await admin.ensureTopic(`${t.out}.${b}`, 1, keep);
  } finally {
    await admin.close();
  }
  const producer = await kafka.producer();
  try {
    await producer.send(t.input, o.sent);
  } finally {
    await producer.close();
  }
  useEnv({ KEYED_IN: t.input, KEYED_OUT: t.out, KEYED_IDLE_MS: idleMs > 0 ? String(idleMs) : undefined });
  const config = streamConfig("keyed-stream", t.dlq, {
    "execution.parallelism": 2,
    "kafka.max-batch-records": 200,
    // Checkpoints during the run: the offsets, watermarks and timers carry across continue-as-new, the state does not.
    "state.checkpoint-interval": "1s",
    "log.level": process.env.KEYED_LOG ?? "warn",
  });
  const run = await runStreaming(pipeline, config, tag);
  try {
    const read = async (branch: string): Promise<unknown[]> =>
      (await kafka.readAll(`${t.out}.${branch}`, { idleTimeoutMs: 1_500 })).map((m) => JSON.parse(m.value!.toString("utf8")) as unknown);
    // Each keyed stage reads its own repartition topic at its own pace: wait for every branch, then a little longer (a window emitted twice would show).
    await readBranches(read, expected, until);
    // state.checkpoint-interval: a partition workflow checkpoints once it has run a batch and 1 s has passed, even
    // with no batch left (a small job may have run all of them first); the windows are read again after it.
    const p = await until("a checkpoint (state.checkpoint-interval)", async () => {
      const q = await run.job.progress();
      return q.workflows.some((w) => w && w.runs > 1 && w.lastCheckpoint) ? q : undefined;
    });
    await new Promise((r) => setTimeout(r, 2_000));
    const actual: Record<string, unknown[]> = {};
    for (const b of BRANCHES) actual[b] = await read(b);
    assertBranches(actual, expected, BRANCHES);
    assert.equal(p.deadLetters, o.deadLetters);
    // A window's output is not any one record's: its lineage names the batch that fired it, whose line the job committed.
    const lines = new Set(
      (await kafka.readAll(lineageTopicOf("keyedtest", tag), { idleTimeoutMs: 1_500 })).map((m) => (JSON.parse(m.value!.toString()) as BatchLineage).batch),
    );
    const windows = await kafka.readAll(`${t.out}.tumbling`, { idleTimeoutMs: 1_500 });
    assert.ok(windows.length > 0);
    for (const m of windows) {
      const lineage = parseLineage(m.headers[LINEAGE_HEADER] ?? "");
      assert.deepEqual([lineage?.source, lineage && lines.has(lineage.batch)], [null, true], `tumbling output's lineage ${m.headers[LINEAGE_HEADER]}`);
      // Their own inputs only with kafka.lineage-inputs, which is off by default.
      assert.equal(m.headers["sage-inputs"], undefined, "a keyed output names its inputs only with kafka.lineage-inputs");
    }
    if (o.deadLetterReason) {
      const dead = await kafka.readAll(t.dlq, { idleTimeoutMs: 1_500 });
      assert.match(dead.map((m) => String(m.headers["sage-error"])).join("\n"), o.deadLetterReason);
    }
    const checkpointed = p.workflows.filter((w) => w && w.runs > 1 && w.lastCheckpoint);
    assert.ok(
      checkpointed.length > 0,
      `a partition workflow checkpointed (state.checkpoint-interval) during the run: ${JSON.stringify(p.workflows.map((w) => w && { runs: w.runs, cp: w.lastCheckpoint, checkpoint: w.checkpoint, batches: w.batches }))}`,
    );
    const status = renderStreamProgress(p);
    for (const w of ["last checkpoint", "watermark tumbling:", "state tumbling:"]) assert.ok(status.includes(w), `sage status shows "${w}":\n${status}`);
  } finally {
    await run.close();
  }
}
