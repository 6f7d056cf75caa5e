/**
 * `sage dlq` against the real dev server and broker: a job's dead letters listed by group, re-driven
 * exactly once (a bounded job through a fixed module, a streaming job through itself once the
 * outage that failed them is over), a record that fails again back in the dead letters with its
 * history, and a redrive interrupted mid-way (the CLI killed with SIGKILL in the middle of the
 * redrive job; a streaming redrive left hanging between its send and its commit) that, asked for
 * again, sends nothing twice.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { REPO, cliEnv, readJsonl, runJob, sageCli, sageCliBackground, testConfig, until } from "../support/harness.js";
import { createTopics, runStreaming, streamCliEnv, streamConfig, streamTopics, testKafka } from "../support/kafka.js";
import { SageClient } from "../../client/sage-client.js";
import { redriveIdOf, type LetterGroup } from "../../client/dlq/selection.js";
import { redriveStream } from "../../client/dlq/stream-redrive.js";
import { totalAttempts, type DeadLetter } from "../../client/dlq/letters.js";
import { findJob } from "../../client/dlq/job-ref.js";
import { lettersOfJob } from "../../client/dlq/job-letters.js";
import { TransactionError } from "../../connectors/kafka/client.js";
import type { BoundedRedriveRecord } from "../../client/dlq/file-letters.js";
import bounded, { type Order } from "../fixtures/dlq-pipeline.js";
import type { Item } from "../fixtures/dlq-stream-pipeline.js";

const FIXED = join(REPO, "test", "fixtures", "dlq-pipeline-fixed.ts");

/** What `sage dlq list --json` prints. */
interface ListJson {
  letters: number;
  groups: LetterGroup[];
  redriven: number;
}

/** What `sage dlq show --json` prints. */
interface ShowJson {
  total: number;
  letters: Array<DeadLetter & { redrivenBy: string | null; totalAttempts: number }>;
}

/** Runs `sage <args>` and parses its JSON output; fails the test with its stderr when it does not succeed. */
function cliJson<T>(args: string[], env: Record<string, string>): T {
  const r = sageCli(args, { env });
  assert.equal(r.code, 0, `sage ${args.join(" ")} exited ${r.code}:\n${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

/** The groups as [operator, error pattern, count]. */
function groupsOf(list: ListJson): Array<[string, string, number]> {
  return list.groups.map((g) => [g.operator, g.error, g.count]);
}

test("bounded: list by group; redrive through a fixed module, killed mid-way and asked again, appends each once; what fails again keeps its history", async () => {
  const config = testConfig("dlq-bounded");
  const input = join(config.dir, "orders.jsonl");
  const output = join(config.dir, "totals.jsonl");
  const kindOf = (id: number): Order["kind"] => (id === 38 ? "hopeless" : id % 8 === 3 ? "poison" : "ok");
  const orders = Array.from({ length: 40 }, (_, id): Order => ({ id, kind: kindOf(id), qty: 2, price: id }));
  writeFileSync(input, [...orders.map((o) => JSON.stringify(o)), "{not json"].join("\n") + "\n");
  const { result } = await runJob(bounded, config, { input, output }, "orders-1");
  assert.equal(result.deadLetters, 7);
  assert.equal(readJsonl(output).length, 34);
  const env = cliEnv(config);

  const before = cliJson<ListJson>(["dlq", "list", "orders-1", "--json"], env);
  assert.deepEqual(
    groupsOf(before).map(([op, error, n]) => [op, error.slice(0, 35), n]),
    [
      ["check", "NonRetryableError: poison order #", 5],
      ["check", "NonRetryableError: hopeless order #", 1],
      ["lines", "NonRetryableError: invalid JSON at ", 1],
    ],
  );

  // The redrive's job runs in the CLI's own worker, slowly: SIGKILL it while the stage runs.
  const args = ["dlq", "redrive", "orders-1", "--operator", "check", "--module", FIXED];
  const child = sageCliBackground(args, { env: { ...env, DLQ_SLOW_MS: "600" } });
  let childLog = "";
  child.stderr?.on("data", (d: Buffer) => (childLog += d.toString()));
  const exited = new Promise<void>((done) => child.once("exit", () => done()));
  const redrives = join(config["data-dir"], "redrive", "dlqtest", "orders-1");
  const record = await until("the redrive's record", async () => {
    const dir = existsSync(redrives) ? readdirSync(redrives)[0] : undefined;
    const path = dir ? join(redrives, dir, "redrive.json") : "";
    return path && existsSync(path) ? (JSON.parse(readFileSync(path, "utf8")) as BoundedRedriveRecord) : undefined;
  });
  assert.equal(record.letters.length, 6, "5 poison, 1 hopeless; not the source's letter");
  const client = await SageClient.connect({ config });
  try {
    await until("the redrive's stage to run", async () => {
      if (child.exitCode !== null) throw new Error(`the redrive exited early: ${childLog}`);
      const d = await client.temporal.workflow.getHandle(record.workflowId).describe();
      return (d.raw.pendingActivities ?? []).some((a) => a.activityType?.name?.startsWith("stage:") && Number(a.attempt) >= 1 && a.lastStartedTime)
        ? true
        : undefined;
    });
  } finally {
    await client.close();
  }
  child.kill("SIGKILL");
  await exited;
  assert.equal(readJsonl(output).length, 34, "nothing was published before the kill");

  const again = sageCli(args, { env });
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stderr, /was started before \(an interrupted redrive\): waiting for it, nothing is sent twice/);
  assert.match(again.stdout, new RegExp(`redrive ${record.redrive}: 6 sent, 1 failed again`));
  const out = readJsonl<{ id: number; total: number; repaired?: boolean }>(output);
  assert.equal(out.length, 39, "34 before, 5 repaired");
  assert.equal(new Set(out.map((r) => r.id)).size, 39, "no id twice");
  assert.deepEqual(
    out.filter((r) => r.repaired).map((r) => r.id),
    [3, 11, 19, 27, 35],
  );
  assert.ok(out.every((r) => r.total === r.id * 2));

  // What `sage dlq show --all` reads (the CLI's own output is tested on the streaming job).
  const reader = await SageClient.connect({ config });
  try {
    const { states } = await lettersOfJob(
      { client: reader, config, kafka: () => assert.fail("a bounded job reads no topic") },
      await findJob(reader, "orders-1"),
    );
    assert.equal(states.length, 8, "7 letters of the job, 1 of the redrive");
    assert.deepEqual(
      states.filter((l) => l.redrivenBy === null).map((l) => l.letter.operator),
      ["lines", "check"],
      "outstanding: the source's letter, and the one that failed again",
    );
    assert.equal(states.filter((l) => l.redrivenBy === record.redrive).length, 6);
    const hopeless = states.find((l) => l.redrivenBy === null && l.letter.operator === "check")!.letter;
    assert.deepEqual(hopeless.record, { id: 38, kind: "hopeless", qty: 2, price: 38 });
    assert.equal(hopeless.job, `orders-1.${record.redrive}`);
    assert.equal(hopeless.origin, "orders-1");
    assert.equal(hopeless.redrive, record.redrive);
    assert.deepEqual(
      hopeless.history.map((f) => [f.job, f.operator, f.error, f.attempts]),
      [["orders-1", "check", "NonRetryableError: hopeless order 38", 1]],
    );
    assert.equal(totalAttempts(hopeless), 2);
    // The redrive's own job is not a job to re-drive from: its letters are the job's.
    await assert.rejects(findJob(reader, `orders-1.${record.redrive}`), new RegExp(`is redrive ${record.redrive} of job orders-1`));
  } finally {
    await reader.close();
  }
});

test("streaming: redrive after an outage sends each dead letter into the job once, across a redrive fenced mid-transaction; what fails again comes back with its history", async () => {
  const t = streamTopics("dlq-stream");
  const jobId = `items-${process.pid}`;
  const down = join(testConfig("dlq-flag").dir, "service-down");
  writeFileSync(down, "");
  const fixtureEnv = { DLQ_IN: t.input, DLQ_OUT: t.output, DLQ_GROUP: t.group, DLQ_SERVICE_DOWN: down };
  Object.assign(process.env, fixtureEnv);
  const { default: pipeline } = await import("../fixtures/dlq-stream-pipeline.js");
  const config = streamConfig("dlq-stream", t.dlq, { "execution.parallelism": 2 });
  const kafka = testKafka();
  await createTopics(kafka, t, 2);
  const N = 200;
  const item = (id: number): Item => ({ id, ...(id % 20 === 5 ? { needsService: true } : {}), ...(id === 17 || id === 123 ? { hopeless: true } : {}) });
  const producer = await kafka.producer();
  await producer.send(
    t.input,
    Array.from({ length: N }, (_, id) => ({ key: String(id), value: JSON.stringify(item(id)) })),
  );
  await producer.close();
  const run = await runStreaming(pipeline, config, jobId);
  const env = { ...streamCliEnv(config, t), ...fixtureEnv };
  try {
    await until("every item through once", async () => {
      const p = await run.job.progress();
      return (p.counts["out"]?.out ?? 0) + p.deadLetters >= N ? p : undefined;
    });
    const before = cliJson<ListJson>(["dlq", "list", jobId, "--json"], env);
    assert.deepEqual(groupsOf(before), [
      ["enrich", "Error: service down for record #", 10],
      ["enrich", "NonRetryableError: hopeless record #", 2],
    ]);

    // The outage is over. A first redrive commits 4 letters, sends 4 more and stops before its commit.
    rmSync(down);
    const filter = { operator: "enrich" };
    let hung!: () => void;
    const hanging = new Promise<void>((r) => (hung = r));
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const zombie = redriveStream({
      kafka,
      pipeline: "dlqstream",
      deadLetterTopic: t.dlq,
      job: jobId,
      target: jobId,
      plan: run.job.inputs[0]!.plan,
      filter,
      redrive: redriveIdOf(jobId, filter, jobId),
      chunk: 4,
      beforeCommit: async (c) => {
        if (c !== 1) return;
        hung();
        await gate;
      },
    });
    await hanging;
    // Asked again (the CLI, same job and filter: the same redrive): it fences the first and sends only the rest.
    const again = sageCli(["dlq", "redrive", jobId, "--operator", "enrich"], { env });
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /: 8 dead letter\(s\) sent into job .*\(4 more were sent by the interrupted run\)/);
    release();
    await assert.rejects(zombie, (err: unknown) => err instanceof TransactionError && err.fenced, "the fenced redrive cannot commit what it sent");

    const p = await until("the re-driven items through", async () => {
      const q = await run.job.progress();
      return (q.counts["out"]?.out ?? 0) >= N - 2 && q.deadLetters >= 14 ? q : undefined;
    });
    assert.deepEqual([p.counts["out"]!.out, p.deadLetters], [N - 2, 14]);
    const out = (await kafka.readAll(t.output)).map((m) => JSON.parse(m.value!.toString("utf8")) as Item);
    const ids = out.map((r) => r.id).sort((a, b) => a - b);
    assert.deepEqual(
      ids,
      Array.from({ length: N }, (_, id) => id).filter((id) => id !== 17 && id !== 123),
      "each item once, the hopeless ones not at all",
    );

    const shown = cliJson<ShowJson>(["dlq", "show", jobId, "--all", "--json"], env);
    assert.equal(shown.total, 14);
    assert.equal(shown.letters.filter((l) => l.redrivenBy === redriveIdOf(jobId, filter, jobId)).length, 12);
    const outstanding = shown.letters.filter((l) => l.redrivenBy === null);
    assert.equal(outstanding.length, 2, "outstanding: the two that failed again");
    for (const l of outstanding) {
      assert.match(l.error, /^NonRetryableError: hopeless record (17|123)$/);
      assert.equal(l.redrive, redriveIdOf(jobId, filter, jobId));
      assert.deepEqual(
        l.history.map((f) => [f.job, f.operator, f.attempts]),
        [[jobId, "enrich", 1]],
      );
      assert.match(l.source ?? "", new RegExp(`^${t.input.replace(/\./g, "\\.")}\\[\\d\\]@\\d+$`), "the source position the record first came from");
    }
  } finally {
    await run.finish().catch(() => undefined);
    await run.close();
  }
});
