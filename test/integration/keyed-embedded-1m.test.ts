/**
 * The embedded state backend with a million keys, against the real dev server and broker
 * (issue 17): a streaming job with one rolling-sum entry per key (the savepoint bench's job:
 * a source-partitioned keyBy, nothing emitted for a key's first record) reads one record for each
 * of 1M keys on `state.backend: embedded`. Its partition workflows hold 1M entries while each
 * checkpoint (continue-as-new) carries a few kilobytes. Then the worker is killed with SIGKILL and
 * a worker on an empty state dir rebuilds from the changelog (cold restore); then that worker is
 * stopped and a new one on the same disk recovers locally. Records sent to sampled keys after each
 * restart must come out with the sums the state gave them (2, then 3), read_committed, once each.
 * The restore times are printed. `SAGE_TEST_EMBEDDED_KEYS` makes it smaller for a quick local run.
 * @runs-alone: a million keys keep both cores busy; beside another file both would crawl.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { SageClient } from "../../client/sage-client.js";
import { partitionWorkflowId } from "../../core/plan/stream.js";
import { defaultPartitionOf } from "../../connectors/kafka/send-chunks.js";
import pipeline, { type KeyRecord } from "../../bench/savepoint/pipeline.js";
import { keyOf, produce, UID } from "../../bench/savepoint/job-env.js";
import { REPO, startWorkerProcess, until, type WorkerProcess } from "../support/harness.js";
import { startShim, streamCliEnv, streamConfig, testKafka } from "../support/kafka.js";
import { stallReport } from "../support/stall-report.js";
import type { KafkaClient } from "../../connectors/kafka/client.js";
import type { StreamJobProgress } from "../../streaming/stream-job.js";

const FIXTURE = join(REPO, "bench", "savepoint", "pipeline.ts");
const KEYS = Number(process.env.SAGE_TEST_EMBEDDED_KEYS ?? 1_000_000);
const PARTITIONS = 4;
/** Keys sent again after each restart: every one must come out with the sum its state held. */
const SAMPLE = 2_000;
/** Records per micro-batch. */
const BATCH = 5_000;

/** A store open the worker logged: rebuilt from the changelog, or recovered locally from its disk. */
interface StoreOpen {
  partition: number;
  recovery: string;
  entries: number;
  ms: number;
}

/** How long a wait may take before the test gives up: the whole file takes about a minute on a quiet machine. */
const GUARD_MS = 600_000;

/**
 * The job's progress once its partition workflows have accepted `n` records and have none pending
 * (each batch ran through the rolling sum). Not the job's counts: CI saw them short of what ran
 * (a keyed unit run again after its workflow task was lost counted nothing for what it had
 * committed; its marker note now carries them, with kafkajs), and the wait then never ends.
 */
function readBy(job: { progress(): Promise<StreamJobProgress> }, n: number): Promise<StreamJobProgress> {
  return until(
    `${n} records through the rolling sum`,
    async () => {
      const p = await job.progress();
      return p.records >= n && p.workflows.every((w) => w === null || w.pending === 0) ? p : undefined;
    },
    GUARD_MS,
  );
}

/**
 * The committed sums of `sum` for every key of `keys` (read_committed), once each has come out.
 * The wait is on the output, not the job's counts: a unit that an earlier attempt committed counts
 * nothing when it runs again, so counts can fall short of what came out.
 */
async function sumsOut(kafka: KafkaClient, topic: string, keys: readonly string[], sum: number): Promise<KeyRecord[]> {
  return until(
    `${keys.length} sums of ${sum} in ${topic}`,
    async () => {
      const out = (await kafka.readToEnd(topic)).map((m) => JSON.parse(m.value!.toString("utf8")) as KeyRecord).filter((r) => r.v === sum);
      return new Set(out.map((r) => r.k)).size >= keys.length ? out : undefined;
    },
    GUARD_MS,
  );
}

/** The keyed-state opens in a worker's log (JSON lines). */
function opens(log: string): StoreOpen[] {
  return log
    .split("\n")
    .filter((l) => l.startsWith("{") && (l.includes("keyed state rebuilt from the changelog") || l.includes("keyed state recovered locally")))
    .map((l) => JSON.parse(l) as Partial<StoreOpen> & { partition: number; ms: number })
    .map((l) => ({ partition: l.partition, recovery: l.recovery ?? "rebuilt", entries: l.entries ?? 0, ms: l.ms }));
}

test(`embedded backend, ${KEYS.toLocaleString("en-US")} keys: small checkpoints, a cold restore and a local recovery, sums carried exactly`, async (tc) => {
  const tag = `k1m-${process.pid}-${Date.now()}`;
  const t = { input: `${tag}.in`, out: `${tag}.out`, dlq: `${tag}.dlq` };
  const kafka = testKafka();
  const admin = await kafka.admin();
  try {
    await admin.ensureTopic(t.input, PARTITIONS, { "retention.ms": "-1" });
    await admin.ensureTopic(t.out, 2);
    await admin.ensureTopic(t.dlq, 1);
  } finally {
    await admin.close();
  }
  const env = { SPBENCH_IN: t.input, SPBENCH_OUT: t.out, SPBENCH_GROUP: `${tag}.group` };
  Object.assign(process.env, env);
  // The workflows checkpoint (continue as new) every 2 s while batches arrive: several times over the feed.
  const config = streamConfig("k1m", t.dlq, { "execution.parallelism": 2, "kafka.max-batch-records": BATCH, "state.checkpoint-interval": "2s" });
  const workerEnv = (stateDir: string) => ({
    ...streamCliEnv(config, { env }),
    SAGE_STATE_BACKEND: "embedded",
    SAGE_STATE_DIR: join(config.dir, stateDir),
    SAGE_LOG_LEVEL: "info",
  });
  const client = await SageClient.connect({ config });
  const workers: WorkerProcess[] = [];
  const started = await startWorkerProcess(FIXTURE, config, client, workerEnv("state-a"));
  workers.push(started);
  const { job, shim } = await startShim(client, pipeline, config, tag);
  // Sampled keys, spread over the key space; each input partition has some.
  const sample = Array.from({ length: SAMPLE }, (_, i) => keyOf(Math.floor((i * KEYS) / SAMPLE)));
  assert.equal(new Set(sample.map((k) => defaultPartitionOf(k, PARTITIONS))).size, PARTITIONS, "the sample reaches every input partition");
  try {
    const fed = Date.now();
    for (let i = 0; i < KEYS; i += 100_000)
      await produce(
        kafka,
        t.input,
        Array.from({ length: Math.min(100_000, KEYS - i) }, (_, j): KeyRecord => ({ k: keyOf(i + j), v: 1 })),
      );
    const built = await readBy(job, KEYS);
    const entries = built.workflows.reduce((n, w) => n + (w?.state?.[UID]?.entries ?? 0), 0);
    const stateBytes = built.workflows.reduce((n, w) => n + (w?.state?.[UID]?.bytes ?? 0), 0);
    tc.diagnostic(`${KEYS} keys read in ${((Date.now() - fed) / 1000).toFixed(1)} s: ${entries} state entries, ${stateBytes} bytes`);
    assert.equal(entries, KEYS, "one state entry per key");

    // The checkpoint: what a partition workflow carries into its next run, its first history event.
    const runs = built.workflows.reduce((n, w) => n + (w ? w.runs - 1 : 0), 0);
    assert.ok(runs >= 2, `the workflows checkpointed (continued as new) ${runs} times`);
    for (let i = 0; i < job.workflowIds.length; i++) {
      const history = await client.temporal.workflow.getHandle(partitionWorkflowId(pipeline.name, tag, i)).fetchHistory();
      const payload = history.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads?.[0]?.data ?? new Uint8Array();
      const input = JSON.parse(Buffer.from(payload).toString("utf8")) as { state?: { pending?: unknown[] } };
      // Batches still queued at the checkpoint travel with it (bounded by the carry budget); the rest is the job's position.
      const queued = JSON.stringify(input.state?.pending ?? []).length;
      const carried = payload.length - queued;
      tc.diagnostic(`partition workflow ${i}: its last checkpoint carries ${carried} bytes (plus ${queued} bytes of queued batches)`);
      assert.ok(carried < 64 * 1024 && carried * 100 < stateBytes, `checkpoint ${carried} bytes against ${stateBytes} bytes of state`);
    }

    // Cold restore: the worker dies; one on an empty state dir rebuilds every store from the changelog.
    started.child.kill("SIGKILL");
    const cold = await startWorkerProcess(FIXTURE, config, client, workerEnv("state-b"));
    workers.push(cold);
    const resend = async (n: number): Promise<void> => {
      await produce(
        kafka,
        t.input,
        sample.map((k): KeyRecord => ({ k, v: 1 })),
      );
      await sumsOut(kafka, t.out, sample, n + 1);
    };
    await resend(1);
    const rebuilt = await until("the cold worker's store opens", async () => (opens(cold.log()).length >= 2 ? opens(cold.log()) : undefined));
    for (const o of rebuilt) tc.diagnostic(`cold restore, changelog partition ${o.partition}: ${o.recovery}, ${o.entries} entries in ${o.ms} ms`);
    assert.ok(
      rebuilt.every((o) => o.recovery === "rebuilt"),
      JSON.stringify(rebuilt),
    );
    assert.equal(
      rebuilt.reduce((n, o) => n + o.entries, 0),
      KEYS,
      "the rebuilds read every key's entry",
    );

    // Local recovery: a clean restart on the same disk opens the stores as they are.
    await cold.stop();
    const warm = await startWorkerProcess(FIXTURE, config, client, workerEnv("state-b"));
    workers.push(warm);
    await resend(2);
    const recovered = await until("the restarted worker's store opens", async () => (opens(warm.log()).length >= 2 ? opens(warm.log()) : undefined));
    for (const o of recovered) tc.diagnostic(`local recovery, changelog partition ${o.partition}: ${o.recovery}, ${o.entries} entries in ${o.ms} ms`);
    assert.ok(
      recovered.every((o) => o.recovery === "current" || o.recovery === "tail"),
      JSON.stringify(recovered),
    );

    await job.stop();
    await shim.done;
    // Only sums above 1 are emitted: the sample's 2s after the cold restore and 3s after the restart, once each.
    const sums = (await kafka.readToEnd(t.out)).map((m) => JSON.parse(m.value!.toString("utf8")) as KeyRecord);
    const got = sums.map((r) => `${r.k}=${r.v}`).sort();
    const want = sample.flatMap((k) => [`${k}=2`, `${k}=3`]).sort();
    assert.deepEqual(got, want);
  } catch (err) {
    for (const line of await stallReport(client, job, workers)) tc.diagnostic(line);
    throw err;
  } finally {
    await shim.stop();
    for (const w of workers) await w.stop();
    await client.close();
  }
});
