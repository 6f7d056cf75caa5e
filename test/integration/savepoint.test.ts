/**
 * Savepoints against the real dev server and broker, through the CLI a user runs: the keyed test
 * pipeline (six keyed operators) is savepointed and stopped, rescaled from 2 to 3 to 1 partition
 * workflows and resumed from each savepoint; savepointed while running, killed with SIGKILL and
 * resumed; restored into a changed pipeline (one operator gone, one new); and refused, with
 * nothing started, for a corrupt, truncated, foreign or future-format savepoint. Every result is
 * read read_committed and must equal the uninterrupted reference, no window twice, none lost.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { cpSync, readFileSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import keyedPipeline, { BRANCHES, type Ev } from "../fixtures/keyed-pipeline.js";
import { assertBranches, FLUSH_KEY, keyedInput, keyedReference, readBranches } from "../support/keyed-reference.js";
import { REPO, sageCliBackground, startWorker, startWorkerProcess, until, useEnv } from "../support/harness.js";
import { startShimProcess, streamCliEnv, streamConfig, testKafka } from "../support/kafka.js";
import { SageClient } from "../../client/sage-client.js";
import { StreamJobHandle } from "../../streaming/stream-job.js";
import { partitionWorkflowId, workflowIndexOf, type StreamProgress } from "../../core/plan/stream.js";
import { defaultPartitionOf } from "../../connectors/kafka/send-chunks.js";
import type { KafkaClient } from "../../connectors/kafka/client.js";
import { WorkflowNotFoundError } from "@temporalio/client";
import type { SavepointManifest } from "../../client/savepoint/manifest.js";

const KEYED_FIXTURE = join(REPO, "test", "fixtures", "keyed-pipeline.ts");
const N = 1_500;
const PIPELINE = "keyedtest";
/** Source partitions of the source-partitioned test's input topic. */
const SOURCE_PARTITIONS = 4;

/** Runs `sage <args>` without blocking this process (its worker serves the job meanwhile). */
function sage(args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = sageCliBackground(args, { env });
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
  // "close": the process has exited and its output has been read to the end.
  return new Promise((done) =>
    child.once("close", (code, signal) => done({ code: code ?? 1, stdout, stderr: signal ? `${stderr}(killed by ${signal})` : stderr })),
  );
}

/** Topics of one test: input (one partition: the reference's watermark is over one ordered input), outputs per branch, dead letters. */
async function topics(tag: string, kafka: KafkaClient, branches: readonly string[], inputPartitions = 1) {
  const t = { input: `${tag}.in`, out: `${tag}.out`, dlq: `${tag}.dlq` };
  const admin = await kafka.admin();
  try {
    const keep = { "retention.ms": "-1" };
    await admin.ensureTopic(t.input, inputPartitions, keep);
    await admin.ensureTopic(t.dlq, 1);
    for (const b of branches) await admin.ensureTopic(`${t.out}.${b}`, 1, keep);
  } finally {
    await admin.close();
  }
  return t;
}

/**
 * Sends events to `topic` keyed by `k`, in order: to partition 0, or with `byKey` where the default
 * partitioner puts each key.
 */
async function send(kafka: KafkaClient, topic: string, events: readonly Ev[], options: { byKey?: boolean } = {}): Promise<void> {
  const producer = await kafka.producer();
  try {
    await producer.send(
      topic,
      events.map((e) => ({ key: e.k, value: JSON.stringify(e), timestamp: String(e.ts), ...(options.byKey ? {} : { partition: 0 }) })),
    );
  } finally {
    await producer.close();
  }
}

/** The job's progress once its rolling reduce has counted `n` records. */
async function processed(client: SageClient, jobId: string, n: number): Promise<StreamProgress[]> {
  return until(
    `job ${jobId} ran ${n} records`,
    async () => {
      const [job] = await StreamJobHandle.find(client, jobId);
      const p = await job?.progress();
      return p && (p.counts["rolling"]?.in ?? 0) >= n ? p.workflows.filter((w): w is StreamProgress => w !== null) : undefined;
    },
    180_000,
  );
}

/** True when no workflow of job `jobId` was ever started (a refused restore started nothing). */
async function neverStarted(client: SageClient, jobId: string, workflows: number): Promise<boolean> {
  for (let i = 0; i < workflows; i++) {
    try {
      await client.temporal.workflow.getHandle(partitionWorkflowId(PIPELINE, jobId, i)).describe();
      return false;
    } catch (err) {
      if (!(err instanceof WorkflowNotFoundError)) throw err;
    }
  }
  return true;
}

/** Parses `sage ... --json` output of a savepoint. */
function savepointOf(stdout: string): { id: string; path: string; manifest: SavepointManifest } {
  return JSON.parse(stdout.trim().split("\n").pop()!) as { id: string; path: string; manifest: SavepointManifest };
}

/** Savepoints the rescale test leaves for the later ones. */
let rescaled: { dir: string; first: { id: string; path: string } } | null = null;

test("savepoint and stop after 3+ checkpoints, rescale 2 -> 3 -> 1, resume each time: every branch equals the uninterrupted reference", async () => {
  const tag = `sp-${process.pid}-${Date.now()}`;
  const kafka = testKafka();
  const t = await topics(tag, kafka, BRANCHES);
  const env = { KEYED_IN: t.input, KEYED_OUT: t.out };
  useEnv({ ...env, KEYED_IDLE_MS: undefined, KEYED_SOURCE_PARTITIONED: undefined, KEYED_V2: undefined });
  // Small batches and a small history budget: job A's runs checkpoint (continue as new) several times over its 500 records.
  const config = streamConfig("savepoint", t.dlq, { "execution.parallelism": 2, "kafka.max-batch-records": 20, "kafka.events-per-run": 60 });
  // The shims are child processes: the checkpoint settings reach them by the environment.
  const cli = { ...streamCliEnv(config, { env }), SAGE_KAFKA_EVENTS_PER_RUN: "60", SAGE_STATE_CHECKPOINT_INTERVAL: "1s" };
  const dir = join(config.dir, "savepoints");
  const input = keyedInput(N);
  const expected = keyedReference(input);
  const parts = [input.slice(0, 500), input.slice(500, 1000), input.slice(1000)];
  const worker = await startWorker(keyedPipeline, config);
  const client = await SageClient.connect({ config });
  const children: Array<ReturnType<typeof sageCliBackground>> = [];
  try {
    // Job A, 2 partition workflows: the first third.
    const a0 = sageCliBackground(["shim", KEYED_FIXTURE, "--job-id", `${tag}-a`], { env: cli });
    children.push(a0);
    // Fed in chunks, each once a checkpoint followed the last (a run checkpoints 1 s after its first batch).
    const checkpoints = async (): Promise<number> =>
      ((await (await StreamJobHandle.find(client, `${tag}-a`))[0]?.progress())?.workflows ?? []).reduce((n, w) => n + (w ? w.runs - 1 : 0), 0);
    for (let i = 0; i < 500; i += 100) {
      const before = i === 0 ? 0 : await checkpoints();
      await send(kafka, t.input, parts[0]!.slice(i, i + 100));
      await until(`a checkpoint after records ${i}..${i + 99}`, async () => ((await checkpoints()) > before ? true : undefined), 120_000);
    }
    await processed(client, `${tag}-a`, 500);
    assert.ok((await checkpoints()) >= 3, "job A crossed 3 checkpoints");
    const stopA = await sage(["stop", `${tag}-a`, "--savepoint", "--dir", dir, "--json"], cli);
    assert.equal(stopA.code, 0, stopA.stderr);
    const sp1 = savepointOf(stopA.stdout);
    assert.equal(sp1.manifest.job.parallelism, 2);
    assert.equal(sp1.manifest.stopped, true);
    assert.deepEqual(sp1.manifest.sources.offsets, { [`${t.input}:0`]: 500 }, "the source offset is the first third");
    assert.deepEqual(Object.keys(sp1.manifest.operators).sort(), ["count", "process", "rolling", "session", "sliding", "tumbling"]);
    assert.ok(sp1.manifest.operators["process"]!.timers > 0, "event-time timers travel in the savepoint");
    await until("job A's shim to leave", async () => (a0.exitCode !== null ? true : undefined), 60_000);
    const atStop = (await kafka.readAll(`${t.out}.rolling`, { idleTimeoutMs: 1_500 })).length;
    assert.equal(atStop, 500, "the rolling reduce emitted one record per input record up to the savepoint, and nothing after it");

    // Job B from the savepoint, 3 partition workflows: state moves by key group.
    const b = sageCliBackground(["shim", KEYED_FIXTURE, "--job-id", `${tag}-b`, "--parallelism", "3", "--from-savepoint", sp1.path], { env: cli });
    children.push(b);
    let bLog = "";
    b.stderr?.on("data", (d: Buffer) => (bLog += d.toString()));
    await send(kafka, t.input, parts[1]!);
    const pb = await processed(client, `${tag}-b`, 500);
    assert.equal(pb.length, 3, "job B runs 3 partition workflows");
    assert.ok(pb.every((w) => w.fromSavepoint === sp1.id));
    const stopB = await sage(["stop", `${tag}-b`, "--savepoint", "--dir", dir, "--json"], cli);
    assert.equal(stopB.code, 0, stopB.stderr);
    const sp2 = savepointOf(stopB.stdout);
    assert.equal(sp2.manifest.job.parallelism, 3);
    assert.deepEqual(sp2.manifest.sources.offsets, { [`${t.input}:0`]: 1000 });
    assert.match(bLog, /restoring savepoint .* with 3 partition workflow\(s\)/);

    // Job C from the second savepoint, 1 partition workflow, to the end of the input.
    const c = sageCliBackground(["shim", KEYED_FIXTURE, "--job-id", `${tag}-c`, "--parallelism", "1", "--from-savepoint", sp2.path], { env: cli });
    children.push(c);
    await send(kafka, t.input, parts[2]!);
    const read = async (branch: string): Promise<unknown[]> =>
      (await kafka.readAll(`${t.out}.${branch}`, { idleTimeoutMs: 1_500 })).map((m) => JSON.parse(m.value!.toString("utf8")) as unknown);
    await readBranches(read, expected, until);
    await new Promise((r) => setTimeout(r, 2_000));
    const actual: Record<string, unknown[]> = {};
    for (const br of BRANCHES) actual[br] = await read(br);
    assertBranches(actual, expected, BRANCHES);
    const stopC = await sage(["stop", `${tag}-c`], cli);
    assert.equal(stopC.code, 0, stopC.stderr);
    await new Promise<void>((r) => (c.exitCode !== null ? r() : c.once("exit", () => r())));
    rescaled = { dir, first: sp1 };

    const list = await sage(["savepoint", "list", "--dir", dir], cli);
    assert.ok(list.stdout.includes(sp1.id) && list.stdout.includes(sp2.id), list.stdout);
    const show = await sage(["savepoint", "show", sp2.path], cli);
    assert.match(show.stdout, /operator tumbling \(window\/tumbling\/aggregate\): \d+ entries/);
  } finally {
    for (const c of children) if (c.exitCode === null) c.kill("SIGKILL");
    await client.close();
    await worker.stop();
  }
});

test("savepoint while running, then kill -9 of worker and shim, then a job from the savepoint: the output before the savepoint and the new job's equal the reference", async () => {
  const tag = `spk-${process.pid}-${Date.now()}`;
  const kafka = testKafka();
  const t = await topics(tag, kafka, BRANCHES);
  const t2 = await topics(`${tag}-2`, kafka, BRANCHES);
  const env = { KEYED_IN: t.input, KEYED_OUT: t.out };
  useEnv({ ...env, KEYED_IDLE_MS: undefined, KEYED_SOURCE_PARTITIONED: undefined, KEYED_V2: undefined });
  const config = streamConfig("savepoint-kill", t.dlq, { "execution.parallelism": 2, "kafka.max-batch-records": 100 });
  const cli = streamCliEnv(config, { env });
  const dir = join(config.dir, "savepoints");
  const input = keyedInput(N);
  const expected = keyedReference(input);
  const client = await SageClient.connect({ config });
  const first = await startWorkerProcess(KEYED_FIXTURE, config, client, cli);
  const shim = startShimProcess(config, { env }, tag, KEYED_FIXTURE);
  try {
    await send(kafka, t.input, input.slice(0, 700));
    await processed(client, tag, 700);
    const taken = await sage(["savepoint", tag, "--dir", dir, "--json"], cli);
    assert.equal(taken.code, 0, taken.stderr);
    const sp = savepointOf(taken.stdout);
    assert.equal(sp.manifest.stopped, false);
    const before: Record<string, unknown[]> = {};
    for (const br of BRANCHES)
      before[br] = (await kafka.readAll(`${t.out}.${br}`, { idleTimeoutMs: 1_500 })).map((m) => JSON.parse(m.value!.toString("utf8")) as unknown);
    // The job goes on after the savepoint: the barrier is released and the sources resume.
    await send(kafka, t.input, input.slice(700, 900));
    const after = await processed(client, tag, 900);
    assert.ok(
      after.every((w) => !w.barrier),
      "the barrier was released",
    );
    first.child.kill("SIGKILL");
    await shim.kill();

    // A new job from the savepoint writes to other topics (a changed sink): before-savepoint output + its output = the reference.
    const env2 = { KEYED_IN: t.input, KEYED_OUT: t2.out };
    useEnv(env2);
    const cli2 = streamCliEnv(config, { env: env2 });
    const second = await startWorkerProcess(KEYED_FIXTURE, config, client, cli2);
    const resumed = sageCliBackground(["shim", KEYED_FIXTURE, "--job-id", `${tag}-r`, "--from-savepoint", sp.path], { env: cli2 });
    try {
      await send(kafka, t.input, input.slice(900));
      const read = async (branch: string): Promise<unknown[]> => [
        ...before[branch]!,
        ...(await kafka.readAll(`${t2.out}.${branch}`, { idleTimeoutMs: 1_500 })).map((m) => JSON.parse(m.value!.toString("utf8")) as unknown),
      ];
      await readBranches(read, expected, until);
      await new Promise((r) => setTimeout(r, 2_000));
      const actual: Record<string, unknown[]> = {};
      for (const br of BRANCHES) actual[br] = await read(br);
      assertBranches(actual, expected, BRANCHES);
      assert.equal((await sage(["stop", `${tag}-r`], cli2)).code, 0);
      // Restoring into the old job's own sink topics, which it went on writing after the savepoint, is
      // warned about (here the restore then stops at the job id, which exists: nothing is started).
      assert.ok(sp.manifest.sinks?.offsets[`${t.out}.rolling:0`] !== undefined, "the savepoint holds the sinks' end offsets");
      const again = await sage(["shim", KEYED_FIXTURE, "--job-id", `${tag}-r`, "--from-savepoint", sp.path], cli);
      assert.equal(again.code, 2, again.stderr);
      assert.match(again.stderr, new RegExp(`warning: sink topic ${t.out}\\.rolling has \\d+ offset\\(s\\) past the savepoint`));
      assert.match(again.stderr, /exists already/);
    } finally {
      resumed.kill("SIGKILL");
      await second.stop();
    }
  } finally {
    first.child.kill("SIGKILL");
    await shim.kill();
    await client.close();
  }
});

test("source-partitioned keyBy: a savepoint at 2 workflows restored at 3 moves each key's state to the workflow that reads its Kafka partition", async () => {
  const tag = `sps-${process.pid}-${Date.now()}`;
  const kafka = testKafka();
  const t = await topics(tag, kafka, BRANCHES, SOURCE_PARTITIONS);
  const env = { KEYED_IN: t.input, KEYED_OUT: t.out, KEYED_SOURCE_PARTITIONED: "1" };
  useEnv({ ...env, KEYED_IDLE_MS: undefined, KEYED_V2: undefined });
  const config = streamConfig("savepoint-source-partitioned", t.dlq, { "execution.parallelism": 2, "kafka.max-batch-records": 50 });
  const cli = streamCliEnv(config, { env });
  const dir = join(config.dir, "savepoints");
  // No flush record: the branches checked (rolling reduce, count windows) do not wait for a watermark.
  const input = keyedInput(N).filter((e) => e.k !== FLUSH_KEY);
  const expected = keyedReference(input);
  // Each key's records go where the default partitioner puts them; from 2 to 3 workflows, partitions 2 and 3 change hands.
  const moved = [..."abcde"].filter((k) => {
    const p = defaultPartitionOf(k, SOURCE_PARTITIONS);
    return workflowIndexOf(p, 2) !== workflowIndexOf(p, 3);
  });
  assert.ok(moved.length > 0, "some key's state changes workflow");
  const worker = await startWorker(keyedPipeline, config);
  const client = await SageClient.connect({ config });
  const children: Array<ReturnType<typeof sageCliBackground>> = [];
  const half = 800;
  try {
    const a = sageCliBackground(["shim", KEYED_FIXTURE, "--job-id", `${tag}-a`], { env: cli });
    children.push(a);
    await send(kafka, t.input, input.slice(0, half), { byKey: true });
    await processed(client, `${tag}-a`, half);
    const stopA = await sage(["stop", `${tag}-a`, "--savepoint", "--dir", dir, "--json"], cli);
    assert.equal(stopA.code, 0, stopA.stderr);
    const sp = savepointOf(stopA.stdout);
    assert.equal(
      Object.values(sp.manifest.sources.offsets).reduce((n, o) => n + Number(o), 0),
      half,
      "the source offsets sum to the records read",
    );
    assert.ok(
      Object.values(sp.manifest.operators).every((op) => op.sourcePartitioned),
      "every keyed operator's state is source-partitioned",
    );

    const b = sageCliBackground(["shim", KEYED_FIXTURE, "--job-id", `${tag}-b`, "--parallelism", "3", "--from-savepoint", sp.path], { env: cli });
    children.push(b);
    let bLog = "";
    b.stderr?.on("data", (d: Buffer) => (bLog += d.toString()));
    await send(kafka, t.input, input.slice(half), { byKey: true });
    const read = async (branch: string): Promise<unknown[]> =>
      (await kafka.readAll(`${t.out}.${branch}`, { idleTimeoutMs: 1_500 })).map((m) => JSON.parse(m.value!.toString("utf8")) as unknown);
    const checked = ["rolling", "count"] as const;
    await readBranches(read, { rolling: expected.rolling!, count: expected.count! }, until).catch((err: unknown) => {
      throw new Error(`${(err as Error).message}\njob B's shim:\n${bLog.slice(-4_000)}`);
    });
    await new Promise((r) => setTimeout(r, 2_000));
    const actual: Record<string, unknown[]> = {};
    for (const br of checked) actual[br] = await read(br);
    // A key whose state were left behind would start its sums and counts over: every row would differ from there on.
    assertBranches(actual, expected, checked);
    const deadLetters = await kafka.readAll(t.dlq, { idleTimeoutMs: 1_000 });
    assert.equal(deadLetters.length, 0, "no record was dead-lettered as in the wrong partition");
    assert.equal((await sage(["stop", `${tag}-b`], cli)).code, 0);
  } finally {
    for (const c of children) if (c.exitCode === null) c.kill("SIGKILL");
    await client.close();
    await worker.stop();
  }
});

test("a changed pipeline (operator count gone, max new) is refused naming the operator, and runs right with --allow-non-restored-state", async () => {
  assert.ok(rescaled, "the rescale test left its savepoints");
  const sp = rescaled.first;
  const tag = `spv-${process.pid}-${Date.now()}`;
  const kafka = testKafka();
  const branches = ["tumbling", "late", "sliding", "session", "rolling", "process", "max"];
  const t = await topics(tag, kafka, branches);
  const config = streamConfig("savepoint-v2", t.dlq, { "execution.parallelism": 2, "kafka.max-batch-records": 100 });
  // The savepoint's source offsets are into the rescale test's topic: the new version reads it too.
  const saved = JSON.parse(readFileSync(join(sp.path, "manifest.json"), "utf8")) as SavepointManifest;
  const inputTopic = Object.keys(saved.sources.offsets)[0]!.replace(/:\d+$/, "");
  const env = { KEYED_IN: inputTopic, KEYED_OUT: t.out, KEYED_V2: "1" };
  useEnv(env);
  const cli = streamCliEnv(config, { env });
  const client = await SageClient.connect({ config });
  try {
    const refused = await sage(["shim", KEYED_FIXTURE, "--job-id", `${tag}-x`, "--from-savepoint", sp.path], cli);
    assert.equal(refused.code, 2, refused.stderr);
    assert.match(refused.stderr, /holds state of operator\(s\) "count" \(window\/count\/aggregate, \d+ entries\) that the pipeline no longer has/);
    assert.match(refused.stderr, /--allow-non-restored-state/);
    assert.ok(await neverStarted(client, `${tag}-x`, 2), "nothing was started");

    const worker = await startWorkerProcess(KEYED_FIXTURE, config, client, cli);
    const shim = sageCliBackground(["shim", KEYED_FIXTURE, "--job-id", `${tag}-y`, "--from-savepoint", sp.path, "--allow-non-restored-state"], { env: cli });
    let log = "";
    shim.stderr?.on("data", (d: Buffer) => (log += d.toString()));
    try {
      // The whole input is already in the topic (the rescale test sent it): the job goes on from offset 500.
      const input = keyedInput(N);
      const after = input.slice(500);
      const rows = await until(
        "the new operator's output",
        async () => {
          const got = await kafka.readAll(`${t.out}.max`, { idleTimeoutMs: 1_500 });
          return got.length >= after.length ? got : undefined;
        },
        180_000,
      );
      assert.equal(rows.length, after.length, "the new rolling max emitted once per record after the savepoint");
      // It started empty: each key's first max is that key's first record after the savepoint.
      const firstOf = new Map<string, Ev>();
      for (const e of after) if (!firstOf.has(e.k)) firstOf.set(e.k, e);
      const outFirst = new Map<string, Ev>();
      for (const m of rows) {
        const e = JSON.parse(m.value!.toString("utf8")) as Ev;
        if (!outFirst.has(e.k)) outFirst.set(e.k, e);
      }
      assert.deepEqual(outFirst, firstOf);
      assert.match(log, /operator count is gone: its state \(\d+ entries\) is dropped/);
      assert.match(log, /operator max is new: it starts with empty state/);
      // The restored operators carry on: the rolling reduce's last sum per key equals the reference's.
      // Each keyed stage reads its own repartition topic at its own pace: wait for the rolling branch too.
      const rolling = await until(
        "the rolling reduce's output",
        async () => {
          const got = (await kafka.readAll(`${t.out}.rolling`, { idleTimeoutMs: 1_500 })).map((m) => JSON.parse(m.value!.toString("utf8")) as Ev);
          return got.length >= after.length ? got : undefined;
        },
        180_000,
      );
      const want = keyedReference(input)["rolling"]!;
      for (const r of rolling) if (r.k !== "zz") assert.ok(want.includes(JSON.stringify(r)), `rolling output ${JSON.stringify(r)} is the reference's`);
      assert.equal(rolling.length, after.length);
      assert.equal((await sage(["stop", `${tag}-y`], cli)).code, 0);
    } finally {
      shim.kill("SIGKILL");
      await worker.stop();
    }
  } finally {
    useEnv({ KEYED_V2: undefined });
    await client.close();
  }
});

test("a corrupt, truncated, foreign or future-format savepoint is refused with a clear error, and nothing is started", async () => {
  assert.ok(rescaled, "the rescale test left its savepoints");
  const sp = rescaled.first;
  const tag = `spbad-${process.pid}-${Date.now()}`;
  const kafka = testKafka();
  const t = await topics(tag, kafka, BRANCHES);
  const saved = JSON.parse(readFileSync(join(sp.path, "manifest.json"), "utf8")) as SavepointManifest;
  const env = { KEYED_IN: Object.keys(saved.sources.offsets)[0]!.replace(/:\d+$/, ""), KEYED_OUT: t.out };
  useEnv({ ...env, KEYED_V2: undefined });
  const config = streamConfig("savepoint-bad", t.dlq, { "execution.parallelism": 2 });
  const cli = streamCliEnv(config, { env });
  const client = await SageClient.connect({ config });
  const variant = (name: string, change: (path: string) => void): string => {
    const path = join(config.dir, name);
    cpSync(sp.path, path, { recursive: true });
    change(path);
    return path;
  };
  const manifestEdit = (edit: (m: Record<string, unknown>) => void) => (path: string) => {
    const m = JSON.parse(readFileSync(join(path, "manifest.json"), "utf8")) as Record<string, unknown>;
    edit(m);
    writeFileSync(join(path, "manifest.json"), JSON.stringify(m));
  };
  const cases: Array<[string, string, RegExp]> = [
    [
      "corrupt",
      variant("corrupt", (p) => {
        const f = join(p, "state", "tumbling.jsonl.gz");
        const b = readFileSync(f);
        const middle = b.length >> 1;
        b[middle] = b[middle]! ^ 0xff;
        writeFileSync(f, b);
      }),
      /state\/tumbling\.jsonl\.gz is corrupt: its SHA-256 is [0-9a-f]{64}, the manifest says/,
    ],
    [
      "truncated",
      variant("truncated", (p) => truncateSync(join(p, "state", "session.jsonl.gz"), 10)),
      /state\/session\.jsonl\.gz has 10 bytes but the manifest says \d+: the file is truncated/,
    ],
    ["truncated manifest", variant("cut-manifest", (p) => truncateSync(join(p, "manifest.json"), 100)), /is not valid JSON .* the file may be truncated/],
    [
      "foreign",
      variant(
        "foreign",
        manifestEdit((m) => ((m.job as Record<string, unknown>).pipeline = "another")),
      ),
      /is of pipeline "another", not "keyedtest"/,
    ],
    [
      "future",
      variant(
        "future",
        manifestEdit((m) => (m.version = 2)),
      ),
      /format version 2, newer than this Sage reads \(up to 1\)/,
    ],
  ];
  try {
    for (const [name, path, message] of cases) {
      const jobId = `${tag}-${name.replace(/ /g, "-")}`;
      const r = await sage(["shim", KEYED_FIXTURE, "--job-id", jobId, "--from-savepoint", path], cli);
      assert.equal(r.code, 2, `${name}: exit code (stderr ${r.stderr})`);
      assert.match(r.stderr, message, `${name}: ${r.stderr}`);
      assert.ok(await neverStarted(client, jobId, 2), `${name}: nothing was started`);
    }
  } finally {
    await client.close();
  }
});
