/**
 * Per-record retries and dead letters on a real worker: a transient failure succeeds on a retry with
 * `ctx.attempt` counting up, a permanent one is dead-lettered after exactly `maxAttempts` tries, a
 * `NonRetryableError` after one, a hung record by its timeout; dead letters hold the operator, the
 * error, the attempts and the record, appear once even when a stage activity is retried, and go
 * where the plan or the configuration says.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { runJob, testConfig, readJsonl } from "../support/harness.js";
import {
  FLAKY_EVERY,
  REJECT_EVERY,
  SINK_EVERY,
  STRICT_EVERY,
  calls,
  deadLetterSinkPipeline,
  jsonlPipeline,
  partialPipeline,
  retriesPipeline,
  shardFaults,
  shardRetryPipeline,
  timeoutPipeline,
} from "../fixtures/retries.js";

/** One line of a dead-letter file. */
interface DeadLetter {
  pipeline: string;
  jobId: string;
  operator: string;
  operatorName: string;
  shard: string;
  attempts: number;
  error: { name: string; message: string; code?: string; stack?: string };
  record: unknown;
}

const byOperatorThenRecord = (a: DeadLetter, b: DeadLetter) =>
  a.operator.localeCompare(b.operator) || JSON.stringify(a.record).localeCompare(JSON.stringify(b.record));

for (const fusion of [true, false]) {
  test(`transient failures succeed on a retry; permanent ones are dead-lettered after maxAttempts, NonRetryableError after one try (fusion ${fusion ? "on" : "off"})`, async () => {
    calls.clear();
    const config = testConfig("retries", { "execution.fusion": fusion });
    const output = join(config.dir, "out.jsonl");
    // A job id runs once per server: one id per variant.
    const jobId = `r1-${fusion ? "fused" : "unfused"}`;
    const { job, result } = await runJob(retriesPipeline, config, { output }, jobId);
    assert.equal(job.plan?.stages.length, fusion ? 1 : 6);

    const nums = Array.from({ length: 60 }, (_, i) => i);
    const afterStrict = nums.filter((v) => v % STRICT_EVERY !== 0);
    const kept = afterStrict.filter((v) => v % REJECT_EVERY !== 0);
    const refusedBySink = kept.filter((v) => v % SINK_EVERY === 0);
    const rec = (v: number) => ({ v, attempt: v % FLAKY_EVERY === 0 ? 3 : 1 });

    // The record a transient failure hit reached the output, from its third attempt.
    assert.deepEqual(readJsonl(output), kept.map(rec));
    for (const v of nums) assert.equal(calls.get(`flaky:${v}`), v % FLAKY_EVERY === 0 ? 3 : 1, `flaky:${v}`);
    for (const v of nums.filter((x) => x % STRICT_EVERY === 0)) assert.equal(calls.get(`strict:${v}`), 2, `strict:${v}`);
    for (const v of afterStrict.filter((x) => x % REJECT_EVERY === 0)) assert.equal(calls.get(`reject:${v}`), 1, `reject:${v}`);
    for (const v of refusedBySink) assert.equal(calls.get(`picky:${v}`), 2, `picky:${v}`);
    // A record dead-lettered upstream never reaches the operators after it.
    for (const v of nums.filter((x) => x % STRICT_EVERY === 0)) assert.equal(calls.get(`reject:${v}`), undefined);

    const dead = nums.length - kept.length + refusedBySink.length;
    assert.equal(result.deadLetters, dead);
    assert.deepEqual(result.counts.flaky, { in: 60, out: 60, dead: 0 });
    assert.deepEqual(result.counts.strict, { in: 60, out: afterStrict.length, dead: 60 - afterStrict.length });
    assert.deepEqual(result.counts.reject, { in: afterStrict.length, out: kept.length, dead: afterStrict.length - kept.length });
    assert.deepEqual(result.counts.out, { in: kept.length, out: kept.length, dead: 0 });
    assert.deepEqual(result.counts.picky, { in: kept.length, out: kept.length - refusedBySink.length, dead: refusedBySink.length });

    const path = join(config["data-dir"], "dead-letters", "retries", `${jobId}.jsonl`);
    assert.equal(result.deadLetterPath, path);
    const letters = readJsonl<DeadLetter>(path).sort(byOperatorThenRecord);
    for (const l of letters) {
      assert.equal(l.pipeline, "retries");
      assert.equal(l.jobId, jobId);
      assert.equal(l.operatorName, l.operator);
      // Unfused, a dead letter's shard names the path of its batch through the stages.
      assert.match(l.shard, fusion ? /^s0-\d{6}$/ : /^s0-\d{6}(\.s\d)+$/);
    }
    // The stack (where each was thrown) differs per run and machine: compared without it, checked apart.
    const strip = ({ operator, attempts, error: { stack, ...error }, record }: DeadLetter) => {
      assert.match(stack ?? "", new RegExp(`^${error.name}: `), "a dead letter without its stack");
      return { operator, attempts, error, record };
    };
    const want = [
      ...refusedBySink.map((v) => ({ operator: "picky", attempts: 2, error: { name: "TypeError", message: `sink refuses ${v}` }, record: rec(v) })),
      ...afterStrict
        .filter((v) => v % REJECT_EVERY === 0)
        .map((v) => ({
          operator: "reject",
          attempts: 1,
          error: { name: "NonRetryableError", message: `${v} is malformed`, code: "NON_RETRYABLE" },
          record: rec(v),
        })),
      ...nums
        .filter((v) => v % STRICT_EVERY === 0)
        .map((v) => ({ operator: "strict", attempts: 2, error: { name: "RangeError", message: `strict cannot take ${v}` }, record: rec(v) })),
    ].sort((a, b) => a.operator.localeCompare(b.operator) || JSON.stringify(a.record).localeCompare(JSON.stringify(b.record)));
    assert.deepEqual(letters.map(strip), want);
  });
}

test("a record that hangs is cut off by the operator's timeoutMs, retried, then dead-lettered", async () => {
  calls.clear();
  const config = testConfig("retries-timeout");
  const output = join(config.dir, "out.jsonl");
  const { result } = await runJob(timeoutPipeline, config, { output }, "t1");
  assert.deepEqual(readJsonl(output), [1, 2, 3, 5, 6, 7, 9]);
  assert.deepEqual(result.counts.slow, { in: 10, out: 7, dead: 3 });
  for (const v of [0, 4, 8]) assert.equal(calls.get(`slow:${v}`), 2);
  const letters = readJsonl<DeadLetter>(result.deadLetterPath!);
  assert.deepEqual(letters.map((l) => l.record).sort(), [0, 4, 8]);
  for (const l of letters) {
    assert.equal(l.attempts, 2);
    assert.equal(l.error.message, 'operator "slow" timed out after 100 ms');
  }
});

test("invalid lines of a JSON Lines source are dead-lettered with file and byte offset; the rest flows on", async () => {
  const config = testConfig("retries-jsonl");
  // dead-letter.path with placeholders, as a user would configure it.
  const cfg = { ...config, "dead-letter": { path: join(config.dir, "dlq", "{pipeline}--{jobId}.jsonl") } };
  const input = join(config.dir, "events.jsonl");
  const lines = ['{"n":1}', "", "not json", '{"n":2}', "   ", '{"n":', '{"n":3}'];
  writeFileSync(input, lines.join("\n") + "\n");
  const output = join(config.dir, "out.jsonl");
  const { result } = await runJob(jsonlPipeline, cfg, { input, output }, "j1");

  assert.deepEqual(readJsonl(output), [2, 4, 6]);
  const path = join(config.dir, "dlq", "retries-jsonl--j1.jsonl");
  assert.equal(result.deadLetterPath, path);
  const letters = readJsonl<DeadLetter>(path);
  const offsetOf = (i: number) => lines.slice(0, i).reduce((n, l) => n + Buffer.byteLength(l) + 1, 0);
  assert.deepEqual(
    letters.map((l) => ({ operator: l.operator, attempts: l.attempts, code: l.error.code, record: l.record })),
    [
      { operator: "events", attempts: 1, code: "NON_RETRYABLE", record: "not json" },
      { operator: "events", attempts: 1, code: "NON_RETRYABLE", record: '{"n":' },
    ],
  );
  assert.ok(letters[0]!.error.message.startsWith(`invalid JSON at ${input} byte ${offsetOf(2)}:`), letters[0]!.error.message);
  assert.ok(letters[1]!.error.message.startsWith(`invalid JSON at ${input} byte ${offsetOf(5)}:`), letters[1]!.error.message);
  // Blank lines are skipped, not records: 5 records read, 2 of them dead.
  assert.deepEqual(result.counts.events, { in: 5, out: 3, dead: 2 });
});

test("a pipeline's own dead-letter sink wins over dead-letter.path; a job without dead letters writes none", async () => {
  const config = testConfig("retries-dl-sink", { "dead-letter.path": "ignored-because-the-plan-names-one.jsonl" });
  const dead = join(config.dir, "dead", "parse-errors.jsonl");
  const output = join(config.dir, "out.jsonl");
  const { result } = await runJob(deadLetterSinkPipeline, config, { dead, output });
  assert.deepEqual(readJsonl(output), [1, 2, 4]);
  assert.equal(result.deadLetterPath, dead);
  assert.deepEqual(
    readJsonl<DeadLetter>(dead).map((l) => [l.record, l.error.message]),
    [
      ["x", '"x" is not a number'],
      ["y", '"y" is not a number'],
    ],
  );
  assert.equal(existsSync(join(config.dir, "ignored-because-the-plan-names-one.jsonl")), false);

  const clean = testConfig("retries-no-dead");
  const out2 = join(clean.dir, "out.jsonl");
  const { result: r2 } = await runJob(jsonlPipeline, clean, { input: writeClean(clean.dir), output: out2 }, "c1");
  assert.equal(r2.deadLetters, 0);
  assert.equal(r2.deadLetterPath, null);
  assert.equal(existsSync(join(clean["data-dir"], "dead-letters", "retries-jsonl", "c1.jsonl")), false);
});

function writeClean(dir: string): string {
  const path = join(dir, "clean.jsonl");
  writeFileSync(path, '{"n":1}\n{"n":2}\n');
  return path;
}

test("a stage activity retried after a failure late in its shard duplicates neither output nor dead letters", async () => {
  shardFaults.finishFailuresLeft = 1;
  const config = testConfig("retries-shard", { "execution.split-bytes": "256b" });
  const input = join(config.dir, "in.txt");
  const nums = Array.from({ length: 300 }, (_, i) => i + 1);
  writeFileSync(input, nums.join("\n") + "\n");
  const output = join(config.dir, "out.jsonl");
  const { result } = await runJob(shardRetryPipeline, config, { input, output }, "s1");

  assert.equal(shardFaults.finishFailuresLeft, 0, "the fault was injected");
  assert.ok(result.splitsTotal >= 4, `splits: ${result.splitsTotal}`);
  assert.deepEqual(
    readJsonl(output),
    nums.filter((n) => n % 3 !== 0),
  );
  const letters = readJsonl<DeadLetter>(result.deadLetterPath!);
  assert.deepEqual(
    letters.map((l) => Number(l.record)),
    nums.filter((n) => n % 3 === 0),
  );
  assert.equal(result.deadLetters, 100);
  assert.deepEqual(result.counts["no-threes"], { in: 300, out: 200, dead: 100 });
});

test("a function that emitted part of its output before failing is retried without duplicating what it emitted", async () => {
  const config = testConfig("retries-partial");
  const main = join(config.dir, "main.jsonl");
  const side = join(config.dir, "side.jsonl");
  const { result } = await runJob(partialPipeline, config, { main, side });
  const nums = Array.from({ length: 10 }, (_, i) => i);
  assert.deepEqual(
    readJsonl(main),
    nums.flatMap((v) => [v, v + 1000]),
  );
  assert.deepEqual(
    readJsonl(side),
    nums.map((v) => v + 100),
  );
  assert.deepEqual(result.counts.partial, { in: 10, out: 20, dead: 0 });
  assert.deepEqual(result.counts.gen, { in: 10, out: 20, dead: 0 });
  assert.equal(result.deadLetters, 0);
});
