/**
 * Keyed state under faults, against the real dev server and broker: a processing-time timer set
 * before its worker was killed with SIGKILL fires once, at its time, on a second worker that had to
 * rebuild the state from the changelog; and a windowed job whose worker is killed mid-window gives
 * read_committed results identical to the reference (no window twice, none missing).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { SageClient } from "../../client/sage-client.js";
import timerPipeline, { type Fired } from "../fixtures/keyed-timer-pipeline.js";
import keyedPipeline, { BRANCHES } from "../fixtures/keyed-pipeline.js";
import { assertBranches, keyedInput, keyedReference, readBranches } from "../support/keyed-reference.js";
import { REPO, startWorker, startWorkerProcess, until, type WorkerProcess } from "../support/harness.js";
import { startShim, startShimProcess, streamCliEnv, streamConfig, testBroker, testKafka } from "../support/kafka.js";
import { startDevServer, startScratchServer, type DevServer } from "../../dev/temporal-server.js";
import { StreamJobHandle } from "../../streaming/stream-job.js";
import { partitionWorkflowId } from "../../core/plan/stream.js";
import type { KafkaClient } from "../../connectors/kafka/client.js";

const TIMER_FIXTURE = join(REPO, "test", "fixtures", "keyed-timer-pipeline.ts");
const KEYED_FIXTURE = join(REPO, "test", "fixtures", "keyed-pipeline.ts");

async function createTopics(kafka: KafkaClient, topics: Record<string, number>): Promise<void> {
  const admin = await kafka.admin();
  try {
    // The test's event time is in the past: no time-based retention may delete it.
    for (const [topic, partitions] of Object.entries(topics)) await admin.ensureTopic(topic, partitions, { "retention.ms": "-1" });
  } finally {
    await admin.close();
  }
}

async function readJson<T>(kafka: KafkaClient, topic: string): Promise<T[]> {
  return (await kafka.readAll(topic, { idleTimeoutMs: 1_500 })).map((m) => JSON.parse(m.value!.toString("utf8")) as T);
}

test("a processing-time timer set before a kill -9 of its worker fires once, at its time, on a worker that rebuilt the state", async () => {
  const tag = `ktimer-${process.pid}-${Date.now()}`;
  const t = { input: `${tag}.in`, out: `${tag}.out`, dlq: `${tag}.dlq` };
  const kafka = testKafka();
  await createTopics(kafka, { [t.input]: 2, [t.out]: 1, [t.dlq]: 1 });
  const env = { KEYED_IN: t.input, KEYED_OUT: t.out, KEYED_TIMER_MS: "15000" };
  Object.assign(process.env, env);
  const config = streamConfig("keyed-timer", t.dlq, { "execution.parallelism": 2, "kafka.max-batch-records": 100 });
  const client = await SageClient.connect({ config });
  const cli = streamCliEnv(config, { env });
  let first: WorkerProcess | null = await startWorkerProcess(TIMER_FIXTURE, config, client, cli);
  let second: WorkerProcess | null = null;
  const { job, shim } = await startShim(client, timerPipeline, config, tag);
  try {
    const keys = ["a", "b", "c", "d", "e", "f"];
    const producer = await kafka.producer();
    const sentAt = Date.now();
    await producer.send(
      t.input,
      Array.from({ length: 300 }, (_, id) => ({ key: keys[id % keys.length]!, value: JSON.stringify({ id, k: keys[id % keys.length] }) })),
    );
    await producer.close();
    await until("every record counted in keyed state", async () => {
      const p = await job.progress();
      return (p.counts["remind"]?.in ?? 0) >= 300 ? p : undefined;
    });
    assert.equal((await readJson<Fired>(kafka, t.out)).length, 0, "no timer fired before its time");
    first.child.kill("SIGKILL");
    first = null;
    // Past every timer's time with no worker at all: the workflows' durable timers wait for one.
    await new Promise((r) => setTimeout(r, Math.max(0, sentAt + 17_000 - Date.now())));
    second = await startWorkerProcess(TIMER_FIXTURE, config, client, cli);
    const fired = await until(
      "a timer per key fired",
      async () => {
        const out = await readJson<Fired>(kafka, t.out);
        return out.length >= keys.length ? out : undefined;
      },
      120_000,
    );
    await new Promise((r) => setTimeout(r, 3_000));
    const after = await readJson<Fired>(kafka, t.out);
    assert.equal(after.length, keys.length, `each key's timer fired once: ${JSON.stringify(after)}`);
    assert.deepEqual(fired.map((f) => f.k).sort(), keys);
    for (const f of after) {
      assert.equal(f.count, 50, `key ${f.k}: the count kept in state`);
      assert.ok(f.firedAt >= f.due, `key ${f.k} fired at ${f.firedAt}, before its time ${f.due}`);
      assert.ok(f.due >= sentAt, `key ${f.k}: due ${f.due} was set after the records were sent`);
    }
    const p = await job.progress();
    const restores = p.workflows.reduce((n, w) => n + (w?.restores ?? 0), 0);
    assert.ok(restores >= 1, `the second worker rebuilt the state from the changelog (restores: ${restores})`);
  } finally {
    await shim.stop();
    await first?.stop();
    await second?.stop();
    await client.close();
  }
});

/**
 * A streaming run of the keyed test pipeline over `input` in one source partition: its topics, the
 * config, a producer of input ranges, and the check that every branch equals the reference read
 * committed (waiting for each, then a little longer: a window emitted twice would show).
 */
async function windowedJob(label: string, seed: number) {
  const input = keyedInput(1_500, seed);
  const expected = keyedReference(input);
  const tag = `${label}-${process.pid}-${Date.now()}`;
  const t = { input: `${tag}.in`, out: `${tag}.out`, dlq: `${tag}.dlq` };
  const kafka = testKafka();
  await createTopics(kafka, { [t.input]: 1, [t.dlq]: 1, ...Object.fromEntries(BRANCHES.map((b) => [`${t.out}.${b}`, 1])) });
  const env = { KEYED_IN: t.input, KEYED_OUT: t.out };
  Object.assign(process.env, env);
  const config = streamConfig(label, t.dlq, { "execution.parallelism": 2, "kafka.max-batch-records": 50 });
  return {
    input,
    tag,
    env,
    config,
    produce: async (from: number, to: number): Promise<void> => {
      const producer = await kafka.producer();
      await producer.send(
        t.input,
        input.slice(from, to).map((e) => ({ key: e.k, value: JSON.stringify(e), timestamp: String(e.ts) })),
      );
      await producer.close();
    },
    /**
     * Records through the rolling reduce: its committed outputs, one per input record. Not the job's
     * counts: a keyed unit that runs again after its workflow task was lost (the dev server killed)
     * skips what it committed and counts nothing for it.
     */
    rolled: async (): Promise<number> => (await kafka.readToEnd(`${t.out}.rolling`)).length,
    check: async (): Promise<void> => {
      const read = (b: string): Promise<unknown[]> => readJson(kafka, `${t.out}.${b}`);
      await readBranches(read, expected, until);
      await new Promise((r) => setTimeout(r, 2_000));
      assertBranches(Object.fromEntries(await Promise.all(BRANCHES.map(async (b) => [b, await read(b)] as const))), expected, BRANCHES);
    },
  };
}

test("kill -9 of the worker mid-window: read_committed window results identical to the reference, none twice, none missing", async () => {
  const { input, tag, env, config, produce, check } = await windowedJob("kwin", 23);
  const client = await SageClient.connect({ config });
  const cli = streamCliEnv(config, { env });
  let first: WorkerProcess | null = await startWorkerProcess(KEYED_FIXTURE, config, client, cli);
  let second: WorkerProcess | null = null;
  const { job, shim } = await startShim(client, keyedPipeline, config, tag);
  try {
    await produce(0, 800);
    await until("part of the input through the rolling reduce", async () => {
      const p = await job.progress();
      return (p.counts["rolling"]?.in ?? 0) >= 300 ? p : undefined;
    });
    first.child.kill("SIGKILL");
    first = null;
    await produce(800, input.length);
    second = await startWorkerProcess(KEYED_FIXTURE, config, client, cli);
    await check();
    const p = await job.progress();
    assert.ok(
      p.workflows.some((w) => (w?.restores ?? 0) > 0),
      "the second worker rebuilt keyed state from the changelog",
    );
  } finally {
    await shim.stop();
    await first?.stop();
    await second?.stop();
    await client.close();
  }
});

test("kill -9 of the shim, then of the broker, then of the dev server (restarted on its database): windows identical to the reference", async (tc) => {
  const step = (what: string): void => tc.diagnostic(`${new Date().toISOString()} ${what}`);
  const { input, tag, env, config: base, produce, check, rolled } = await windowedJob("kall", 31);
  const server = await startScratchServer(base.dir);
  const config = { ...base, temporal: { ...base.temporal, address: server.address } };
  const worker = await startWorker(keyedPipeline, config);
  let client = await SageClient.connect({ config });
  const handleOf = (c: SageClient) =>
    new StreamJobHandle(
      c,
      "keyedtest",
      tag,
      [0, 1].map((i) => partitionWorkflowId("keyedtest", tag, i)),
    );
  let job = handleOf(client);
  let shim = startShimProcess(config, { env }, tag, KEYED_FIXTURE);
  let restarted: DevServer | null = null;
  const broker = testBroker();
  /** The job's progress, or null while the server is down (a query to a killed server may never answer: bounded by a timer). */
  const progress = async () => {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<null>((r) => (timer = setTimeout(() => r(null), 10_000)));
    try {
      return await Promise.race([job.progress().catch(() => null), late]);
    } finally {
      clearTimeout(timer);
    }
  };
  /** Records through the rolling reduce (undefined while the broker is down). */
  const through = async (n: number): Promise<true | undefined> => ((await rolled().catch(() => 0)) >= n ? true : undefined);
  try {
    await produce(0, 400);
    await until("a first part through", () => through(150), 120_000);
    step("kill -9 shim");
    await shim.kill();
    shim = startShimProcess(config, { env }, tag, KEYED_FIXTURE);
    await produce(400, 800);
    await until("a second part through", () => through(550), 120_000);
    step("kill -9 broker");
    broker.kill();
    await new Promise((r) => setTimeout(r, 3_000));
    broker.restart();
    step("broker restarted");
    await produce(800, 1_150);
    step("third part produced");
    await until("a third part through", () => through(900), 180_000);
    step("kill -9 dev server");
    process.kill(server.pid!, "SIGKILL");
    await new Promise((r) => setTimeout(r, 2_000));
    restarted = await startDevServer({
      address: server.address,
      uiPort: 0,
      headless: true,
      dbFile: join(base.dir, "temporal.db"),
      logFile: join(base.dir, "temporal.log"),
      startTimeoutMs: 120_000,
    });
    step("dev server restarted");
    // A connection to the killed server is not trusted again: a fresh client, as a user's next command would have.
    await client.close().catch(() => undefined);
    client = await SageClient.connect({ config });
    job = handleOf(client);
    await produce(1_150, input.length);
    step("last part produced");
    await until("every record through", () => through(input.length), 240_000);
    await check();
  } catch (err) {
    tc.diagnostic(`failed: ${(err as Error).stack ?? String(err)}`);
    tc.diagnostic(`shim output:\n${shim.log().slice(-3000)}`);
    const p = await progress();
    for (const w of p?.workflows ?? []) tc.diagnostic(JSON.stringify({ ...w, counts: undefined, plan: undefined }));
    throw err;
  } finally {
    step("cleanup");
    broker.restart();
    await shim.kill();
    step("shim gone");
    await client.close();
    step("client closed");
    await worker.stop();
    step("worker stopped");
    await restarted?.stop();
    await server.stop().catch(() => undefined);
  }
});
