/**
 * Per-record lineage of a streaming job (map over Kafka, real dev server and broker): every output
 * and every dead letter names the source record it came from, checked against where that record
 * sits in the input, and its batch's line names a real run of the right partition workflow; across
 * a worker kill -9 mid-stream and continue-as-new, and read back by `sage lineage` after the job ended.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { SageClient } from "../../client/sage-client.js";
import { recordLineage } from "../../client/lineage/record-lineage.js";
import { LINEAGE_HEADER, lineageTopicOf, parseLineage, type BatchLineage } from "../../core/plan/lineage.js";
import { positionOf } from "../../connectors/kafka/records.js";
import { sageCli, startWorkerProcess, until } from "../support/harness.js";
import {
  STREAM_FIXTURE,
  createTopics,
  inSlices,
  exactlyOnce,
  produceRange,
  startShim,
  streamCliEnv,
  streamConfig,
  streamTopics,
  testKafka,
  waitForRecords,
} from "../support/kafka.js";
import pipeline from "../fixtures/stream-pipeline.js";

const N = 6_000;
const poison = (id: number): boolean => id % 499 === 7;
const POISONED = Array.from({ length: N }, (_, id) => id).filter(poison).length;

test("every output and dead letter points to its source offset, across a worker kill -9 and continue-as-new", async () => {
  const jobId = "lineage";
  const t = streamTopics(jobId);
  const env = { ...t.env, STREAM_SLOW_MS: "1" };
  Object.assign(process.env, env);
  // One batch at a time (no merging) of 50 records: ~60 batches per partition workflow, past a 60-event run budget several times.
  const config = streamConfig(jobId, t.dlq, {
    "execution.parallelism": 2,
    "kafka.max-batch-records": 50,
    "kafka.max-unacked-batches": 1,
    "kafka.events-per-run": 60,
  });
  const kafka = testKafka();
  await createTopics(kafka, t, 2);
  await produceRange(kafka, t.input, 0, N, poison);
  // Where each input record sits: the truth the lineage is checked against.
  const where = new Map<number, string>();
  for (const m of await kafka.readAll(t.input))
    where.set((JSON.parse(m.value!.toString()) as { id: number }).id, positionOf(t.input, m.partition, Number(m.offset)));
  assert.equal(where.size, N);

  const client = await SageClient.connect({ config });
  const cliEnv = streamCliEnv(config, { env });
  const first = await startWorkerProcess(STREAM_FIXTURE, config, client, cliEnv);
  const { job, shim } = await startShim(client, pipeline, config, jobId);
  let second: Awaited<ReturnType<typeof startWorkerProcess>> | null = null;
  try {
    await until("a few batches done", async () => ((await job.progress()).counts["out"]?.out ?? 0) >= 1_500 || undefined);
    first.child.kill("SIGKILL");
    second = await startWorkerProcess(STREAM_FIXTURE, config, client, cliEnv);
    await waitForRecords(job, N - POISONED);
    await until("the dead letters through", async () => ((await job.progress()).deadLetters >= POISONED ? true : undefined));
    await job.stop();
    await shim.done;

    const out = await kafka.readAll(t.output);
    assert.deepEqual(
      exactlyOnce(
        out.map((m) => JSON.parse(m.value!.toString()) as { id: number }),
        0,
        N,
        poison,
      ).missing,
      0,
    );
    const dead = (await kafka.readAll(t.dlq)).filter((m) => m.headers["sage-job"] === jobId);
    assert.equal(dead.length, POISONED);
    const lines = new Map<string, BatchLineage>();
    for (const m of await kafka.readAll(lineageTopicOf("streamtest", jobId))) lines.set(m.key!.toString(), JSON.parse(m.value!.toString()) as BatchLineage);

    const wrong: string[] = [];
    const runs = new Map<string, Set<string>>();
    for (const m of [...out, ...dead]) {
      const id = (JSON.parse(m.value!.toString()) as { id: number }).id;
      const lineage = parseLineage(m.headers[LINEAGE_HEADER] ?? "");
      const line = lineage ? lines.get(lineage.batch) : undefined;
      if (!lineage || lineage.source !== where.get(id) || !line || !inSlices(lineage.source, line.slices)) {
        wrong.push(`${id}: ${m.headers[LINEAGE_HEADER]} (input at ${where.get(id)})`);
        continue;
      }
      const set = runs.get(line.workflowId) ?? new Set();
      runs.set(line.workflowId, set.add(line.runId));
    }
    assert.deepEqual(wrong.slice(0, 5), [], `${wrong.length} records with a wrong or missing lineage`);
    assert.deepEqual([...runs.keys()].sort(), ["sage/streamtest/lineage/p0", "sage/streamtest/lineage/p1"]);
    // Small runs: the partition workflows continued as new, and the lines name the run that committed each batch.
    assert.ok(
      [...runs.values()].some((ids) => ids.size > 1),
      `batches from ${[...runs.values()].map((ids) => ids.size).join(" and ")} run(s): expected continue-as-new`,
    );
    for (const [workflowId, ids] of runs)
      for (const runId of ids) assert.equal((await client.temporal.workflow.getHandle(workflowId, runId).describe()).runId, runId);

    // `sage lineage` after the job ended, on an output of an early run (before the kill) and on a dead letter.
    const sample = out[0]!;
    const ref = positionOf(t.output, sample.partition, Number(sample.offset));
    const answer = await recordLineage(kafka, "streamtest", jobId, ref);
    assert.equal(answer.source, where.get((JSON.parse(sample.value!.toString()) as { id: number }).id));
    const letter = dead[0]!;
    const cli = sageCli(["lineage", jobId, positionOf(t.dlq, letter.partition, Number(letter.offset)), "--json"], { env: cliEnv });
    assert.equal(cli.code, 0, cli.stderr);
    const printed = JSON.parse(cli.stdout) as { source: string; batch: BatchLineage };
    assert.equal(printed.source, where.get((JSON.parse(letter.value!.toString()) as { id: number }).id));
    assert.equal(printed.batch.batch, parseLineage(letter.headers[LINEAGE_HEADER]!)!.batch);
    assert.match(printed.batch.runId, /^[0-9a-f-]{36}$/);
  } finally {
    await shim.stop();
    await first.stop();
    await second?.stop();
    await client.close();
  }
});
