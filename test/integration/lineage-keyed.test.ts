/**
 * Lineage of keyed outputs (real dev server and broker): a tumbling window per key and an interval
 * join over Kafka, with the worker killed with SIGKILL mid-stream (the next one restores the state,
 * input summaries included, from the changelog). Every window's `sage-inputs` summary counts exactly
 * the records of its key and window, its ranges and sample are theirs, and its expansion lists
 * exactly their source offsets (some windows fit in the sample, some are scanned for); every
 * join pair names exactly its two records; `sage lineage --expand` prints the same after the job ended.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { SageClient } from "../../client/sage-client.js";
import { expandInputs } from "../../client/lineage/record-inputs.js";
import { INPUT_SAMPLE, INPUTS_HEADER, parseInputs, splitOrigin, type OutputInputs } from "../../core/plan/input-summary.js";
import { encodeKey } from "../../core/plan/key-groups.js";
import { changelogTopicOf, repartitionTopicOf } from "../../core/plan/stream.js";
import { parseEntryKey } from "../../activities/state/entry-key.js";
import { STATE } from "../../activities/state/state-names.js";
import { positionOf } from "../../connectors/kafka/records.js";
import type { ConsumedMessage } from "../../connectors/kafka/client.js";
import { REPO, sageCli, startWorkerProcess, until } from "../support/harness.js";
import { stallReport } from "../support/stall-report.js";
import { startShim, streamCliEnv, streamConfig, testKafka } from "../support/kafka.js";
import pipeline, { LOWER_MS, UPPER_MS, WINDOW_MS, type LineageEv, type WindowIds } from "../fixtures/keyed-lineage-pipeline.js";

const FIXTURE = join(REPO, "test", "fixtures", "keyed-lineage-pipeline.ts");
const N = 1_800;
const T0 = 1_700_000_000_000;

/** Record `id`: every 20th of key "r" (about 12 a window: within the sample), the others of k0..k2 (about 80: scanned for). */
function eventOf(id: number): LineageEv {
  return { id, k: id % 20 === 0 ? "r" : `k${id % 3}`, ts: T0 + id * 40, side: id % 2 === 0 ? "L" : "R" };
}

/** The ids of each (key, window start), from the input. */
function windowsOf(events: readonly LineageEv[]): Map<string, number[]> {
  const windows = new Map<string, number[]>();
  for (const e of events) {
    const at = `${e.k}@${e.ts - (e.ts % WINDOW_MS)}`;
    windows.set(at, [...(windows.get(at) ?? []), e.id]);
  }
  return windows;
}

/** Every L/R pair of a key within the join interval, as `l,r`. */
function pairsOf(events: readonly LineageEv[]): Set<string> {
  const pairs = new Set<string>();
  for (const l of events.filter((e) => e.side === "L"))
    for (const r of events) if (r.side === "R" && r.k === l.k && r.ts >= l.ts + LOWER_MS && r.ts <= l.ts + UPPER_MS) pairs.add(`${l.id},${r.id}`);
  return pairs;
}

/** The summary of an output record, checked against the source positions of the ids it came from. */
function checkSummary(inputs: OutputInputs | null, positions: readonly string[], what: string): void {
  assert.ok(inputs, `${what} has a ${INPUTS_HEADER} header`);
  const { summary } = inputs;
  assert.equal(summary.n, positions.length, `${what}: the summary counts its inputs`);
  const ranges: Record<string, [number, number]> = {};
  for (const p of positions) {
    const m = /^(.+)\[(\d+)\]@(\d+)$/.exec(p)!;
    const origin = `${m[1]}:${m[2]}`;
    const o = Number(m[3]);
    const r = ranges[origin];
    ranges[origin] = r ? [Math.min(r[0], o), Math.max(r[1], o)] : [o, o];
  }
  assert.deepEqual(summary.r, ranges, `${what}: per-partition ranges`);
  assert.equal(summary.s.length, Math.min(INPUT_SAMPLE, positions.length), `${what}: sample size`);
  for (const [origin, offset] of summary.s) {
    const { topic, partition } = splitOrigin(origin);
    assert.ok(positions.includes(positionOf(topic, partition, offset)), `${what}: sampled ${origin}@${offset} is one of its inputs`);
  }
}

const inputsOf = (m: ConsumedMessage): OutputInputs | null => parseInputs(m.headers[INPUTS_HEADER] ?? "");

test("keyed outputs name exactly their inputs, summarised and expanded, across a worker kill -9", async (tc) => {
  const jobId = `klineage-${process.pid}`;
  const t = { input: `${jobId}.in`, windows: `${jobId}.out.windows`, pairs: `${jobId}.out.pairs`, dlq: `${jobId}.dlq` };
  const env = { LINEAGE_IN: t.input, LINEAGE_OUT: `${jobId}.out` };
  Object.assign(process.env, env);
  const kafka = testKafka();
  const admin = await kafka.admin();
  try {
    // The event time is in the past: no time-based retention may delete it.
    await admin.ensureTopic(t.input, 2, { "retention.ms": "-1" });
    for (const topic of [t.windows, t.pairs]) await admin.ensureTopic(topic, 1, { "retention.ms": "-1" });
    await admin.ensureTopic(t.dlq, 1);
  } finally {
    await admin.close();
  }
  const events = Array.from({ length: N }, (_, id) => eventOf(id));
  const producer = await kafka.producer();
  try {
    await producer.send(
      t.input,
      events.map((e) => ({ key: null, value: JSON.stringify(e), partition: e.id % 2, timestamp: String(e.ts) })),
    );
    // A record far ahead in each partition moves the watermark past every window (it is in no pair, and its own window never fires).
    await producer.send(
      t.input,
      [0, 1].map((partition) => ({ key: null, value: JSON.stringify({ id: -1, k: "flush", ts: T0 + 3_600_000, side: "F" }), partition })),
    );
  } finally {
    await producer.close();
  }
  const where = new Map<number, string>();
  for (const m of await kafka.readAll(t.input))
    where.set((JSON.parse(m.value!.toString()) as LineageEv).id, positionOf(t.input, m.partition, Number(m.offset)));
  const expectedWindows = windowsOf(events);
  const expectedPairs = pairsOf(events);
  assert.ok(expectedPairs.size > 100);

  const config = streamConfig(jobId, t.dlq, { "execution.parallelism": 2, "kafka.max-batch-records": 100, "kafka.lineage-inputs": true });
  const client = await SageClient.connect({ config });
  const cliEnv = streamCliEnv(config, { env });
  const first = await startWorkerProcess(FIXTURE, config, client, cliEnv);
  const { job, shim } = await startShim(client, pipeline, config, jobId);
  let second: Awaited<ReturnType<typeof startWorkerProcess>> | null = null;
  try {
    // Killed once the windows hold state: the next worker restores it (summaries included) from the changelog.
    await until("a third of the records in the windows", async () => ((await job.progress()).counts["windows"]?.in ?? 0) >= N / 3 || undefined);
    first.child.kill("SIGKILL");
    second = await startWorkerProcess(FIXTURE, config, client, cliEnv);
    const read = async (topic: string, n: number) =>
      until(
        `${n} records on ${topic}`,
        async () => {
          const got = await kafka.readAll(topic, { idleTimeoutMs: 1_000 });
          return got.length >= n ? got : undefined;
        },
        240_000,
      );
    const windows = await read(t.windows, expectedWindows.size);
    const pairs = await read(t.pairs, expectedPairs.size);
    await job.stop();
    await shim.done;

    // Every window once, with exactly its ids, and a summary that is theirs.
    assert.equal(windows.length, expectedWindows.size);
    let sampled = 0;
    let scanned = 0;
    for (const m of windows) {
      const w = JSON.parse(m.value!.toString()) as WindowIds;
      const ids = expectedWindows.get(`${w.k}@${w.start}`);
      assert.deepEqual(
        [...w.ids].sort((a, b) => a - b),
        ids,
        `window ${w.k}@${w.start}`,
      );
      const positions = ids!.map((id) => where.get(id)!);
      const inputs = inputsOf(m);
      checkSummary(inputs, positions, `window ${w.k}@${w.start}`);
      assert.deepEqual([inputs!.operator, inputs!.key, inputs!.window], ["windows", encodeKey(w.k), { start: w.start, end: w.end }]);
      const expanded = await expandInputs(kafka, "keyedlineage", jobId, inputs!);
      assert.deepEqual(expanded.inputs, [...positions].sort(byPosition), `window ${w.k}@${w.start} expands to exactly its inputs`);
      assert.equal(expanded.exact, true);
      if (expanded.from === "sample") sampled++;
      else scanned++;
    }
    assert.ok(sampled > 0 && scanned > 0, `windows within the sample (${sampled}) and scanned for (${scanned})`);

    // Every pair once, naming its two records.
    const seen = new Set<string>();
    for (const m of pairs) {
      const p = JSON.parse(m.value!.toString()) as { l: number; r: number };
      seen.add(`${p.l},${p.r}`);
      checkSummary(inputsOf(m), [where.get(p.l)!, where.get(p.r)!], `pair ${p.l},${p.r}`);
    }
    assert.deepEqual([pairs.length, seen], [expectedPairs.size, expectedPairs]);

    // What lineage adds, in bytes: the header per keyed output, and per input record its offset on the repartition topic
    // and its summary entries on the changelog (printed for the run log; nothing is asserted on sizes).
    const headerBytes = (ms: readonly ConsumedMessage[]): number =>
      ms.reduce((n, m) => n + INPUTS_HEADER.length + m.headers[INPUTS_HEADER]!.length, 0) / ms.length;
    const changelog = await kafka.readAll(changelogTopicOf("keyedlineage", jobId, "windows"));
    const summaries = changelog.filter((m) => [STATE.inputs, STATE.inputSample].includes(parseEntryKey(m.key!.toString()).name as "$i"));
    const repartition = (await kafka.readAll(repartitionTopicOf("keyedlineage", jobId, "windows"))).filter((m) => m.key !== null);
    // `,"p":<offset>` in each repartition record's JSON.
    const offsetBytes = repartition.reduce((n, m) => n + `,"p":${(JSON.parse(m.value!.toString()) as { p: number }).p}`.length, 0) / repartition.length;
    const bytes = (ms: readonly ConsumedMessage[]): number => ms.reduce((n, m) => n + (m.key?.length ?? 0) + (m.value?.length ?? 0), 0);
    process.stdout.write(
      `lineage bytes: sage-inputs header ${headerBytes(windows).toFixed(1)} per window output, ${headerBytes(pairs).toFixed(1)} per join pair; ` +
        `source offset ${offsetBytes.toFixed(1)} per repartition record (${repartition.length}); changelog of the windows ${bytes(changelog)} B in ${changelog.length} entries, of which input summaries ${bytes(summaries)} B in ${summaries.length}\n`,
    );

    // The CLI, after the job ended, on the window with the most records.
    const big = windows.reduce((a, b) => ((inputsOf(a)?.summary.n ?? 0) >= (inputsOf(b)?.summary.n ?? 0) ? a : b));
    const cli = sageCli(["lineage", jobId, positionOf(t.windows, big.partition, Number(big.offset)), "--expand", "--json"], { env: cliEnv });
    assert.equal(cli.code, 0, cli.stderr);
    const printed = JSON.parse(cli.stdout) as { inputs: { count: number; expanded: { inputs: string[]; exact: boolean } } };
    const w = JSON.parse(big.value!.toString()) as WindowIds;
    assert.equal(printed.inputs.count, w.ids.length);
    assert.deepEqual(printed.inputs.expanded.inputs, w.ids.map((id) => where.get(id)!).sort(byPosition));
  } catch (err) {
    for (const line of await stallReport(client, job, second ? [first, second] : [first])) tc.diagnostic(line);
    throw err;
  } finally {
    await shim.stop();
    await first.stop();
    await second?.stop();
    await client.close();
  }
});

/** Orders `topic[partition]@offset` positions by topic, partition, offset. */
function byPosition(a: string, b: string): number {
  const pa = /^(.+)\[(\d+)\]@(\d+)$/.exec(a)!;
  const pb = /^(.+)\[(\d+)\]@(\d+)$/.exec(b)!;
  return pa[1]! < pb[1]! ? -1 : pa[1]! > pb[1]! ? 1 : Number(pa[2]) - Number(pb[2]) || Number(pa[3]) - Number(pb[3]);
}
