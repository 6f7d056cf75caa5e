/**
 * `sage whatif` against a streaming job that ran for real (dev server, broker, local model server):
 * the base module again gives an empty diff and no model call; a changed filter gives exactly the
 * records it lets through more and less; a changed prompt in the second stage re-runs that stage
 * alone (the first comes from the memo) and calls the model once per record it reaches. The job's
 * output topic is the same after every what-if, and a range Kafka no longer holds fails clearly.
 * Without a base, the changed side is diffed against the outputs the job wrote (placed by their
 * lineage headers): the same diffs as against the base re-run, and a clear error once the output
 * topic's head is deleted. With `whatif.retain`, a range Kafka no longer holds is read from the
 * job's retained copy; without that either, the error says both.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { Kafka } from "kafkajs";
import { pino } from "pino";
import { startModelServerProcess, type ModelServerProcess } from "../../models/server-process.js";
import { SageClient } from "../../client/sage-client.js";
import { lineageTopicOf } from "../../core/plan/lineage.js";
import type { DiffEntry } from "../../core/whatif/output-diff.js";
import { RangeUnavailableError, RecordedOutputsUnavailableError } from "../../replay/whatif/errors.js";
import { parseRangeBound, readRecordedRange } from "../../replay/whatif/recorded-range.js";
import { whatIf, type WhatifOptions, type WhatifReport } from "../../replay/whatif/whatif.js";
import type { Pipeline } from "../../core/api/pipeline.js";
import { REPO, sageCli, until } from "../support/harness.js";
import { createTopics, runStreaming, streamCliEnv, streamConfig, streamTopics, testBrokers, testKafka } from "../support/kafka.js";
import { readFileSync, rmSync } from "node:fs";
import { retainDirOf } from "../../connectors/kafka/retained-input.js";
import { join } from "node:path";
import base, { BASE_TEMPLATE, KEEP_BASE, whatifPipeline, type Answered, type Question } from "../fixtures/whatif-pipeline.js";

const QUESTIONS: Question[] = [
  "What is Kafka?",
  "Why is the sky blue?",
  "What is a workflow?",
  "Who wrote Hamlet?",
  "What is two plus two?",
  "Where is Paris?",
].map((text, id) => ({ id, text }));
const kept = (keep: (q: Question) => boolean): number[] => QUESTIONS.filter(keep).map((q) => q.id);

/** What `sage whatif --json` prints: the report with its diff's entries at the top. */
type WhatifSummary = Omit<WhatifReport, "diff"> & { entries: DiffEntry[] };

let models: ModelServerProcess;
before(async () => (models = await startModelServerProcess()));
after(async () => models.stop());

/** Ids of the diff's entries of one kind, sorted. */
function idsOf(entries: DiffEntry[], kind: DiffEntry["kind"]): number[] {
  return entries
    .filter((e) => e.kind === kind)
    .map((e) => Number(e.key))
    .sort((a, b) => a - b);
}

test("what-if: unchanged, changed filter, changed prompt; the job's output untouched; an expired range", async () => {
  const t = streamTopics("whatif");
  Object.assign(process.env, t.env);
  // Parallelism 1: the second stage (parallelism 2) is not fused with the first, in the job as in the what-if.
  const config = streamConfig("whatif", t.dlq, {
    "llm.base-url": `${models.url}/v1`,
    "kafka.max-batch-records": 3,
    "execution.parallelism": 1,
    "whatif.retain.bytes": "1mb",
  });
  const kafka = testKafka();
  await createTopics(kafka, t, 1);
  const producer = await kafka.producer();
  await producer.send(
    t.input,
    QUESTIONS.map((q) => ({ key: String(q.id), value: JSON.stringify(q) })),
  );
  await producer.close();

  const jobId = "whatif";
  const expected = kept(KEEP_BASE);
  const job = await runStreaming(base, config, jobId);
  try {
    await until("every kept question answered", async () => ((await kafka.readAll(t.output)).length >= expected.length ? true : undefined), 240_000);
    await job.finish();
  } finally {
    await job.close();
  }
  const before = await kafka.readAll(t.output);
  const probe = await kafka.admin();
  const highBefore = await probe.partitionOffsets(t.output).finally(() => probe.close());
  assert.deepEqual(
    before.map((m) => (JSON.parse(m.value!.toString()) as Answered).id).sort((a, b) => a - b),
    expected,
  );

  const client = await SageClient.connect({ config });
  const plan = base.compile({ parallelism: config.execution.parallelism, fusion: config.execution.fusion }).plan;
  assert.equal(plan.stages.length, 2);
  const options = (changed: Pipeline): WhatifOptions => ({
    config,
    kafka,
    job: { pipeline: plan.pipeline, jobId, plan, params: {} },
    base,
    changed,
    runtime: client.runtimeOptions(),
    deadLetterTopic: t.dlq,
    memo: true,
    maxRecords: 3,
    logger: pino({ level: "warn" }),
  });
  try {
    // The base again: every stage unit of the changed side comes from the memo the base side filled, and the base side's requests are the job's.
    const same = await whatIf(options(whatifPipeline({ keep: KEEP_BASE, template: BASE_TEMPLATE })));
    assert.deepEqual(same.diff.entries, []);
    assert.equal(same.counts.same, expected.length);
    assert.equal(same.base.modelCalls, 0, "the base side's requests are the job's: answered from the response cache");
    assert.equal(same.base.cacheHits, 2 * expected.length);
    assert.deepEqual([same.changed.modelCalls, same.changed.cacheHits, same.changed.stageRuns], [0, 0, 0]);
    assert.ok(same.changed.memoHits > 0);

    // A changed filter: ids that are multiples of 4 out, the other multiples of 3 in.
    const keep4 = (q: Question): boolean => q.id % 4 !== 0;
    const filtered = await whatIf(options(whatifPipeline({ keep: keep4, template: BASE_TEMPLATE })));
    const added = kept(keep4).filter((id) => !expected.includes(id));
    const removed = expected.filter((id) => !kept(keep4).includes(id));
    assert.deepEqual(idsOf(filtered.diff.entries, "added"), added);
    assert.deepEqual(idsOf(filtered.diff.entries, "removed"), removed);
    assert.deepEqual(idsOf(filtered.diff.entries, "changed"), []);
    assert.equal(filtered.counts.same, expected.length - removed.length);
    // Only the questions it lets through anew are new requests, two each (topic and answer). The first stage ran
    // again (its filter changed), its other requests from the cache; a second-stage unit whose input is unchanged from the memo.
    assert.equal(filtered.changed.modelCalls, 2 * added.length);
    assert.deepEqual(filtered.changed.operators["topic"], { calls: added.length, cacheHits: kept(keep4).length - added.length });
    assert.equal(filtered.changed.operators["answer"]?.calls, added.length);

    // A changed prompt in the second stage: the first stage comes from the memo, the second calls the model once per record it reaches.
    const reworded = await whatIf(options(whatifPipeline({ keep: KEEP_BASE, template: "Reply with one short sentence. Question: {{text}}" })));
    assert.equal(reworded.changed.operators["topic"], undefined, "the first stage made no request at all");
    assert.deepEqual(reworded.changed.operators["answer"], { calls: expected.length, cacheHits: 0 });
    assert.equal(reworded.changed.modelCalls, expected.length);
    assert.ok(reworded.changed.promptTokens > 0);
    assert.equal(reworded.changed.memoHits, reworded.units, "each first-stage unit from the memo");
    assert.equal(reworded.changed.stageRuns, same.base.stageRuns - reworded.units, "each second-stage unit run again");
    assert.deepEqual([reworded.counts.added, reworded.counts.removed, reworded.counts.changed + reworded.counts.same], [0, 0, expected.length]);
    for (const e of reworded.diff.entries) {
      assert.equal(e.kind, "changed");
      if (e.kind === "changed")
        assert.deepEqual(
          e.fields.map((f) => f.path),
          ["$.answer"],
          `record ${e.key}: only the answer may change`,
        );
    }

    // None of it reached the job's topics: the output is as the job left it, no what-if topic was made.
    const afterAll = await kafka.readAll(t.output);
    assert.deepEqual(
      afterAll.map((m) => [m.partition, m.offset, m.value!.toString()]),
      before.map((m) => [m.partition, m.offset, m.value!.toString()]),
    );
    const admin = await kafka.admin();
    try {
      assert.deepEqual(await admin.partitionOffsets(t.output), highBefore);
      const sides = [same, filtered, reworded].flatMap((r) => [r.base.jobId, r.changed.jobId]).map((id) => lineageTopicOf(plan.pipeline, id));
      assert.deepEqual(await admin.missingTopics(sides), sides);
    } finally {
      await admin.close();
    }

    // Times go through the broker's offset-for-time lookup: from the first record's time is offset 0, to a later time the end.
    const first = Number((await kafka.readAll(t.input))[0]!.timestamp);
    const [byTime] = await readRecordedRange(
      kafka,
      [t.input],
      parseRangeBound(new Date(first).toISOString(), "--from"),
      parseRangeBound(new Date(first + 60_000).toISOString(), "--to"),
    );
    assert.deepEqual([byTime!.from, byTime!.to, byTime!.records.length], [0, QUESTIONS.length, QUESTIONS.length]);

    // The CLI on the base module: the job found by its id, an empty diff on stdout and in --out, no model call.
    const module = join(REPO, "test", "fixtures", "whatif-pipeline.ts");
    const env = { ...streamCliEnv(config, t), SAGE_LLM_BASE_URL: `${models.url}/v1` };
    const diffFile = join(config.dir, "diff.jsonl");
    const printed = sageCli(["whatif", jobId, "--module", module, "--base", module, "--json", "--out", diffFile], { env });
    assert.equal(printed.code, 0, printed.stderr);
    const json = JSON.parse(printed.stdout) as WhatifSummary;
    assert.deepEqual(json.counts, { added: 0, removed: 0, changed: 0, same: expected.length });
    assert.deepEqual([json.base.modelCalls, json.changed.modelCalls, json.entries.length], [0, 0, 0]);
    assert.equal(readFileSync(diffFile, "utf8"), "");

    // No base: the changed side against what the job wrote, read back and placed by the outputs' lineage headers.
    const recorded = (changed: Pipeline): WhatifOptions => ({ ...options(changed), base: undefined });
    const again = await whatIf(recorded(whatifPipeline({ keep: KEEP_BASE, template: BASE_TEMPLATE })));
    assert.deepEqual(again.diff.entries, []);
    assert.deepEqual([again.base.recorded, again.base.outputs, again.base.stageRuns, again.counts.same], [true, expected.length, 0, expected.length]);
    assert.equal(again.changed.modelCalls, 0);
    const filteredRecorded = await whatIf(recorded(whatifPipeline({ keep: keep4, template: BASE_TEMPLATE })));
    assert.deepEqual(idsOf(filteredRecorded.diff.entries, "added"), added);
    assert.deepEqual(idsOf(filteredRecorded.diff.entries, "removed"), removed);
    assert.deepEqual(idsOf(filteredRecorded.diff.entries, "changed"), []);
    const cliRecorded = sageCli(["whatif", jobId, "--module", module, "--json"], { env });
    assert.equal(cliRecorded.code, 0, cliRecorded.stderr);
    const recordedJson = JSON.parse(cliRecorded.stdout) as WhatifSummary;
    assert.deepEqual(recordedJson.counts, { added: 0, removed: 0, changed: 0, same: expected.length });
    assert.equal(recordedJson.base.recorded, true);

    // The output topic's head deleted: the job's outputs for the range may be gone, which a what-if without a base refuses.
    const rawOut = new Kafka({ brokers: [testBrokers()], clientId: "whatif-test" }).admin();
    await rawOut.connect();
    await rawOut.fetchTopicMetadata({ topics: [t.output] });
    await rawOut.deleteTopicRecords({ topic: t.output, partitions: [{ partition: 0, offset: "2" }] });
    await rawOut.disconnect();
    await assert.rejects(
      whatIf(recorded(base)),
      (err: unknown) => err instanceof RecordedOutputsUnavailableError && err.topic === t.output && err.partition === 0 && err.firstHeld === 2,
    );
    const cliGone = sageCli(["whatif", jobId, "--module", module], { env });
    assert.equal(cliGone.code, 2, cliGone.stderr);
    assert.match(cliGone.stderr, new RegExp(`${t.output.replace(/\./g, "\\.")}\\[0\\] holds offsets from 2 only`));
    // With a base the job's outputs are not read: the what-if still runs.
    assert.deepEqual((await whatIf(options(base))).diff.entries, []);

    // The first records deleted (as retention would): the job's retained copy (whatif.retain) still has them.
    const raw = new Kafka({ brokers: [testBrokers()], clientId: "whatif-test" }).admin();
    await raw.connect();
    await raw.fetchTopicMetadata({ topics: [t.input] });
    await raw.deleteTopicRecords({ topic: t.input, partitions: [{ partition: 0, offset: "4" }] });
    await raw.disconnect();
    const fromCopy = await whatIf({ ...options(base), from: parseRangeBound("0:0", "--from") });
    assert.deepEqual([fromCopy.range[0]!.from, fromCopy.range[0]!.records], [0, QUESTIONS.length]);
    assert.deepEqual([fromCopy.diff.entries, fromCopy.counts.same], [[], expected.length]);
    // Without the copy (its bounds cut it; here it is removed), a range from offset 0 is no longer available, and the error says both.
    rmSync(retainDirOf(config["data-dir"], plan.pipeline, jobId), { recursive: true, force: true });
    await assert.rejects(
      whatIf({ ...options(base), from: parseRangeBound("0:0", "--from") }),
      (err: unknown) =>
        err instanceof RangeUnavailableError && err.topic === t.input && err.partition === 0 && err.firstHeld === 4 && err.firstRetained === null,
    );
    const cli = sageCli(["whatif", jobId, "--module", module, "--base", module, "--from", "0:2"], { env });
    assert.equal(cli.code, 2, cli.stderr);
    assert.match(
      cli.stderr,
      new RegExp(
        `${t.input.replace(/\./g, "\\.")}\\[0\\] starts at offset 2, which is no longer available: the first offset still held is 4, and the job keeps no copy of it`,
      ),
    );
  } finally {
    await client.close();
  }
});
