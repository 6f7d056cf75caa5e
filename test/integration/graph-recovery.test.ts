/**
 * A routed job survives a worker killed with SIGKILL: fusion off (every branch batch crosses
 * workflow history), small splits, CPU work per record; a `sage worker` process is killed while its
 * `work` activity is held at line 2400 (the fixture's gate, opened only once that process is gone),
 * and a second one finishes the job. Nothing here depends on timing: the held activity must run
 * again on the second worker, and the output must be byte-identical to an uninterrupted run and
 * equal to a reference computed here: each record once, in its branch.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import proto from "@temporalio/proto";
import { SageClient, type SageJob } from "../../client/sage-client.js";
import pipeline, { type RoutedRecord } from "../fixtures/routed.js";
import { startWorkerProcess, testConfig, progressUntil, until } from "../support/harness.js";

const FIXTURE = "test/fixtures/routed.ts";
const LINES = 6000;
/** Fusion off and small splits: ~40 splits, each a dozen stage activities along its branches. */
const OVERRIDES = { "execution.fusion": false, "execution.split-bytes": "6kb" };
/** Chained hashes per record in `work`: enough CPU that the job is still running when the kill comes. */
const ROUNDS = "300";
/** The line at which the fixture holds `work` until the worker has been killed: 40% of the way in. */
const GATE_AT = "2400";

const WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet"];

/** Lines `<i> <3..9 words>`: 15 to 70 characters, so all three branches get records. */
function inputLines(): string[] {
  let seed = 11;
  return Array.from({ length: LINES }, (_, i) => {
    const words: string[] = [];
    for (let k = 0; k < 3 + (i % 7); k++) {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      words.push(WORDS[seed % WORDS.length]!);
    }
    return `${i} ${words.join(" ")}`;
  });
}

/** The routed job's output as a plain computation: by length, long lines whose digest starts with 0 dropped. */
function reference(lines: readonly string[]): RoutedRecord[] {
  return lines.flatMap((line): RoutedRecord[] => {
    const digest = createHash("sha256").update(line).digest("hex").slice(0, 16);
    const branch = line.length < 36 ? "short" : line.length >= 48 ? "long" : "medium";
    return branch === "long" && digest.startsWith("0") ? [] : [{ branch, line, digest }];
  });
}

/** Attempt numbers of the stage activities of every run of a job (following continue-as-new). */
async function stageAttempts(client: SageClient, job: SageJob): Promise<number[]> {
  const attempts: number[] = [];
  let runId: string | undefined = job.runId;
  while (runId) {
    const events = (await client.temporal.workflow.getHandle(job.workflowId, runId).fetchHistory()).events ?? [];
    const stages = new Set(
      events.filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name?.startsWith("stage:")).map((e) => String(e.eventId)),
    );
    for (const e of events) {
      const started = e.activityTaskStartedEventAttributes;
      if (e.eventType === proto.temporal.api.enums.v1.EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED && stages.has(String(started?.scheduledEventId))) {
        attempts.push(started?.attempt ?? 1);
      }
    }
    runId = events[events.length - 1]?.workflowExecutionContinuedAsNewEventAttributes?.newExecutionRunId ?? undefined;
  }
  return attempts;
}

test("a worker killed with SIGKILL mid-way through a routed, unfused job: output identical to an uninterrupted run", { timeout: 600_000 }, async () => {
  const lines = inputLines();
  const want = reference(lines);
  for (const b of ["short", "medium", "long"]) assert.ok(want.filter((r) => r.branch === b).length > 500, `branch ${b} is thin`);
  const config = testConfig("graph-kill9", OVERRIDES);
  const input = join(config.dir, "input.txt");
  writeFileSync(input, lines.map((l) => `${l}\n`).join(""));
  const client = await SageClient.connect({ config });
  const workers = [await startWorkerProcess(FIXTURE, config, client)];
  try {
    const killedOut = join(config.dir, "killed.jsonl");
    const gate = join(config.dir, "gate");
    const job = await client.submit(pipeline, {
      jobId: `routed-killed-${process.pid}`,
      params: { input, output: killedOut, rounds: ROUNDS, gate, gateAt: GATE_AT },
    });
    // The fixture holds `work` at line GATE_AT, so the kill certainly lands inside a stage activity;
    // the other splits go on meanwhile (stages run ahead of one another), so wait for a fifth of them.
    await until("work to reach the gate", async () => (existsSync(`${gate}.reached`) ? true : undefined), 120_000);
    const before = await progressUntil(job, "a fifth of the splits", (p) => p.splitsDone >= p.splitsTotal / 5);
    const killed = workers[0]!.child;
    const gone = new Promise((done) => killed.once("exit", done));
    killed.kill("SIGKILL");
    // The gate opens only once the process holding it is gone: it cannot finish the held activity.
    await gone;
    writeFileSync(`${gate}.open`, "");
    assert.ok(before.splitsTotal >= 30, `expected dozens of splits, got ${before.splitsTotal}`);
    assert.ok(before.splitsDone < before.splitsTotal, `the job finished before the kill (${before.splitsDone}/${before.splitsTotal})`);
    assert.ok(before.activities > before.splitsDone * 9, "batches did not cross history along the branches");

    workers.push(await startWorkerProcess(FIXTURE, config, client));
    const result = await job.result();
    assert.equal(result.phase, "done");
    assert.equal(result.splitsDone, result.splitsTotal);
    assert.equal(result.deadLetters, 0);
    // Each process that reached the gate line appended its pid: first the killed one, then the second worker.
    const reached = readFileSync(`${gate}.reached`, "utf8").trimEnd().split("\n");
    assert.equal(reached[0], String(killed.pid), `the gate was first reached by ${reached[0]}, not by the killed worker ${killed.pid}`);
    assert.ok(reached.includes(String(workers[1]!.child.pid)), `the held work did not run again on the second worker: ${reached.join(", ")}`);
    const attempts = await stageAttempts(client, job);
    assert.ok(
      attempts.some((a) => a > 1),
      `no stage activity ran twice, though the kill came while one was held (${attempts.length} stage activities)`,
    );

    const cleanOut = join(config.dir, "uninterrupted.jsonl");
    const clean = await client.submit(pipeline, { jobId: `routed-clean-${process.pid}`, params: { input, output: cleanOut, rounds: ROUNDS } });
    const cleanResult = await clean.result();
    assert.deepEqual(result.counts, cleanResult.counts);
    assert.ok(readFileSync(killedOut).equals(readFileSync(cleanOut)), "killed and uninterrupted runs wrote different bytes");

    const got = readFileSync(killedOut, "utf8")
      .trimEnd()
      .split("\n")
      .map((l) => JSON.parse(l) as RoutedRecord);
    assert.equal(got.length, want.length);
    for (const branch of ["short", "medium", "long"]) {
      assert.deepEqual(
        got.filter((r) => r.branch === branch),
        want.filter((r) => r.branch === branch),
        `branch ${branch}: records lost, duplicated or out of order`,
      );
    }
    assert.deepEqual(result.counts.out, { in: want.length, out: want.length, dead: 0 });
    assert.deepEqual(result.counts.work, { in: LINES, out: LINES, dead: 0 });
  } finally {
    for (const w of workers) await w.stop();
    await client.close();
  }
});
