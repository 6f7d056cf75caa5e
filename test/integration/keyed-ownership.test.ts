/**
 * Key-group ownership against the real dev server and broker: one worker at a time serves a
 * partition workflow's keyed state. Worker A is frozen (SIGSTOP) inside a keyed unit, after the
 * unit took its transactional id and before it committed; worker B takes the workflow over once
 * A's workflow task times out, rebuilds the state from the changelog and commits the unit. When A
 * wakes (SIGCONT), its late commit is refused: B's producer fenced A's. The logs must say so, and
 * every window must equal the reference read_committed, none twice, none lost. (Had A not known the
 * partition's marker, its late attempt would read it, see B's commit and skip the unit: also safe.)
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import keyedPipeline, { BRANCHES, type Ev } from "../fixtures/keyed-pipeline.js";
import { assertBranches, keyedInput, keyedReference, readBranches } from "../support/keyed-reference.js";
import { REPO, startWorkerProcess, until, type WorkerProcess } from "../support/harness.js";
import { startShim, streamCliEnv, streamConfig, testKafka } from "../support/kafka.js";
import { SageClient } from "../../client/sage-client.js";
import { changelogTopicOf } from "../../core/plan/stream.js";
import { transactionalIdOf } from "../../connectors/kafka/sink.js";
import type { KafkaClient } from "../../connectors/kafka/client.js";

const KEYED_FIXTURE = join(REPO, "test", "fixtures", "keyed-pipeline.ts");
const PIPELINE = "keyedtest";
/** The record whose rolling reduce stalls worker A (not the first of its key: a reduce runs from the second record on). */
const STALL_ID = 600;

/** A pino line of a worker's log. */
interface LogLine {
  msg?: string;
  [field: string]: unknown;
}

/** The JSON lines of a worker's output with message `msg`. */
function logLines(log: string, msg: string): LogLine[] {
  return log
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .flatMap((l) => {
      try {
        return [JSON.parse(l) as LogLine];
      } catch {
        return [];
      }
    })
    .filter((l) => l.msg === msg);
}

/** The records of `topic`, read_committed. */
async function readJson<T>(kafka: KafkaClient, topic: string): Promise<T[]> {
  return (await kafka.readAll(topic, { idleTimeoutMs: 1_500 })).map((m) => JSON.parse(m.value!.toString("utf8")) as T);
}

test("an owner frozen mid-unit is fenced: its late commit is refused after another worker rebuilt the state and committed", async (tc) => {
  const step = (what: string): void => tc.diagnostic(`${new Date().toISOString()} ${what}`);
  const input = keyedInput(1_500, 41);
  const expected = keyedReference(input);
  const tag = `kown-${process.pid}-${Date.now()}`;
  const t = { input: `${tag}.in`, out: `${tag}.out`, dlq: `${tag}.dlq` };
  const kafka = testKafka();
  const admin = await kafka.admin();
  try {
    // The test's event time is in the past: no time-based retention may delete it.
    for (const topic of [t.input, ...BRANCHES.map((b) => `${t.out}.${b}`)]) await admin.ensureTopic(topic, 1, { "retention.ms": "-1" });
    await admin.ensureTopic(t.dlq, 1);
  } finally {
    await admin.close();
  }
  const env = { KEYED_IN: t.input, KEYED_OUT: t.out };
  Object.assign(process.env, env);
  // Info level: the workers' logs are what the test reads (B's rebuild, A's refused commit).
  const config = streamConfig("kown", t.dlq, { "execution.parallelism": 2, "kafka.max-batch-records": 50, "log.level": "info" });
  const stallDir = join(config.dir, "stall");
  mkdirSync(stallDir, { recursive: true });
  const produce = async (events: readonly Ev[]): Promise<void> => {
    const producer = await kafka.producer();
    try {
      await producer.send(
        t.input,
        events.map((e) => ({ key: e.k, value: JSON.stringify(e), timestamp: String(e.ts) })),
      );
    } finally {
      await producer.close();
    }
  };
  const client = await SageClient.connect({ config });
  const cli = streamCliEnv(config, { env });
  const a: WorkerProcess = await startWorkerProcess(KEYED_FIXTURE, config, client, { ...cli, KEYED_STALL: `${STALL_ID}:${stallDir}` });
  let b: WorkerProcess | null = null;
  const { job, shim } = await startShim(client, keyedPipeline, config, tag);
  const rollingStage = job.inputs[0]!.plan.stages.find((s) => s.operators.includes("rolling"))!;
  const rollingIds = [0, 1].map((i) => transactionalIdOf(PIPELINE, tag, rollingStage.id, `p${i}`));
  try {
    // First A commits a rolling unit of the stall record's key group, so that A's producer holds the
    // id and A knows the partition's progress marker (it trusts it while no one has fenced it): its
    // late commit then writes, rather than reading the marker again and skipping what B committed.
    const key = input[STALL_ID]!.k;
    await produce(input.slice(0, 400));
    await until(
      "worker A committed a rolling unit of the stall record's key",
      async () => ((await readJson<Ev>(kafka, `${t.out}.rolling`)).some((r) => r.k === key) ? true : undefined),
      180_000,
    );
    await produce(input.slice(400, 1_000));
    // A's thread is blocked inside the rolling unit of record STALL_ID until the release file exists:
    // a SIGSTOP now lands between the unit's fence (its session began) and its commit, every time.
    await until("worker A stalled in the rolling reduce of the stall record", async () => existsSync(join(stallDir, "stalled")) || undefined, 180_000);
    a.child.kill("SIGSTOP");
    const frozenAt = Date.now();
    step(`worker A (${a.identity}) frozen with SIGSTOP inside a rolling unit`);
    b = await startWorkerProcess(KEYED_FIXTURE, config, client, cli);
    step(`worker B (${b.identity}) polls`);
    // B has the workflow once A's workflow task timed out; it reruns the unit (a local activity leaves no result behind) and commits it.
    await until(
      "worker B committed the rolling unit A holds",
      async () => ((await readJson<Ev>(kafka, `${t.out}.rolling`)).some((r) => r.id === STALL_ID) ? true : undefined),
      180_000,
    );
    const tookOverMs = Date.now() - frozenAt;
    step(`worker B committed the unit ${tookOverMs} ms after A froze`);
    writeFileSync(join(stallDir, "release"), "");
    a.child.kill("SIGCONT");
    step("worker A woken with SIGCONT");
    const refused = await until(
      "worker A's late commit refused",
      async () => {
        const lines = logLines(a.log(), "kafka transaction failed; the producer is dropped and the markers are read again");
        const fenced = lines.filter((l) => l.fenced === true && rollingIds.includes(String(l.transactionalId)));
        return fenced.length > 0 ? fenced : undefined;
      },
      120_000,
    );
    step(`worker A fenced: ${JSON.stringify(refused[0])}`);
    await produce(input.slice(1_000));
    const read = (branch: string): Promise<unknown[]> => readJson(kafka, `${t.out}.${branch}`);
    await readBranches(read, expected, until);
    // A little longer: a window emitted twice would show.
    await new Promise((r) => setTimeout(r, 2_000));
    assertBranches(Object.fromEntries(await Promise.all(BRANCHES.map(async (br) => [br, await read(br)] as const))), expected, BRANCHES);

    // What the logs say happened: A was fenced on the rolling unit's transactional id ...
    const shard = Number(String(refused[0]!.transactionalId).split(".p").pop());
    assert.match(String(refused[0]!.err), /INVALID_PRODUCER_EPOCH|PRODUCER_FENCED|old epoch/, "the refusal is the broker's epoch check");
    // ... after B, cold, had rebuilt that partition's rolling state from the changelog.
    const rebuilt = logLines(b.log(), "keyed state rebuilt from the changelog").filter(
      (l) => l.changelog === changelogTopicOf(PIPELINE, tag, "rolling") && l.partition === shard,
    );
    assert.ok(rebuilt.length > 0, `worker B rebuilt rolling partition ${shard} from the changelog:\n${b.log().slice(-3_000)}`);
    assert.equal(rebuilt[0]!.was, null, "B had no copy of its own before");
    step(`worker B rebuilt: ${JSON.stringify(rebuilt[0])}`);
    const p = await job.progress();
    assert.ok(
      p.workflows.some((w) => (w?.restores ?? 0) > 0),
      "the partition workflows counted a restore",
    );
  } catch (err) {
    tc.diagnostic(`worker A output:\n${a.log().slice(-4_000)}`);
    if (b) tc.diagnostic(`worker B output:\n${b.log().slice(-4_000)}`);
    throw err;
  } finally {
    writeFileSync(join(stallDir, "release"), "");
    if (a.child.exitCode === null && a.child.signalCode === null) a.child.kill("SIGCONT");
    await shim.stop();
    await a.stop();
    await b?.stop();
    await client.close();
  }
});
