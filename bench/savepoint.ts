/**
 * Benchmark: savepoint and restore time and size against state size (issue 17, "Measure"). For
 * each size N, a streaming job with one keyed operator (a rolling sum, one state entry per key,
 * behind a source-partitioned keyBy) reads one record for each of N keys; then `takeSavepoint`
 * (what `sage savepoint` calls) while it runs, and its files on disk; then a new job from the
 * savepoint, timed as seeding (`restoreSavepoint`) and each partition's cold rebuild from the
 * seeded changelog on a fresh worker, on the memory backend and on the embedded one, whose worker
 * is then restarted on the same disk (local recovery). The baseline, in the same run: one plain
 * read of the job's changelog with the project's Kafka client. Kafka Streams has no savepoint; that
 * read is the floor of both. It starts its own dev server and broker. See `bench/savepoint/`.
 *
 *   npx tsx bench/savepoint.ts [--keys 10000,100000,1000000] [--backends memory,embedded] [--parallelism 2]
 *     [--partitions 4] [--smoke]
 */
import { mkdtempSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, startScratchServer, type DevServer } from "../dev/temporal-server.js";
import { startBroker, type Broker } from "../dev/kafka-broker.js";
import { machineLine, printTable, saveResult } from "./machine.js";
import { measureSavepoint, type SavepointBenchRun } from "./savepoint/measure.js";
import { triggerKeys } from "./savepoint/job-env.js";
import type { RestoredJob, StateOpen } from "./savepoint/restored-job.js";

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]! : fallback;
}
const SMOKE = process.argv.includes("--smoke");
const KEYS = arg("keys", SMOKE ? "2000" : "10000,100000,1000000")
  .split(",")
  .map(Number);
const PARALLELISM = Number(arg("parallelism", "2"));
const PARTITIONS = Number(arg("partitions", "4"));
/** The backends of the jobs restored from each savepoint (memory always; embedded adds the local-recovery restart). */
const BACKENDS = arg("backends", "memory,embedded").split(",");
if (KEYS.some((n) => !(Number.isInteger(n) && n > 0))) throw new Error("--keys needs positive integers, comma-separated");

const fmt = (n: number, digits = 0) => (Number.isFinite(n) ? n.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits }) : "-");
const seconds = (ms: number) => fmt(ms / 1000, 2);
const ratio = (a: number, b: number) => (b > 0 && Number.isFinite(a) ? `${(a / b).toFixed(1)}x` : "-");
const load = () =>
  loadavg()
    .map((l) => l.toFixed(1))
    .join(" ");

/** The slowest partition: each rebuilds in its workflow's first unit, and the job waits for the last. */
function slowest(opens: readonly StateOpen[] | undefined): number {
  return opens && opens.length > 0 ? Math.max(...opens.map((x) => x.ms)) : NaN;
}

/** The job from the savepoint on `backend`, if the run made one. */
function on(r: SavepointBenchRun, backend: RestoredJob["backend"]): RestoredJob | undefined {
  return r.restores.find((x) => x.backend === backend);
}

/** What a run must show, whatever its times: every key in the savepoint, and each restored job's state equal to it. */
function check(r: SavepointBenchRun, failures: string[]): void {
  const fail = (what: string) => failures.push(`${r.keys} keys: ${what}`);
  const sp = r.savepoint.entries;
  if (sp !== r.keys) fail(`the savepoint holds ${sp} entries, not one per key`);
  for (const x of r.restores) {
    const rebuilt = x.rebuilds.reduce((n, o) => n + o.entries, 0);
    if (x.rebuilds.length !== PARALLELISM || x.rebuilds.some((o) => o.recovery !== "rebuilt"))
      fail(`${x.backend}: the fresh worker logged ${x.rebuilds.map((o) => o.recovery).join(", ")}, not ${PARALLELISM} rebuilds`);
    if (rebuilt !== sp) fail(`${x.backend}: the rebuilds read ${rebuilt} entries, the savepoint has ${sp}`);
    if (x.stateEntries !== sp) fail(`${x.backend}: the restored job holds ${x.stateEntries} entries, the savepoint ${sp}`);
    // Each round sends one record to the same keys: a key's sums after the savepoint are 2, 3, ... (restored 1, plus 1 each).
    const keys = triggerKeys(r.keys, PARTITIONS).length;
    const want = Array.from({ length: x.read }, (_, i) => 2 + Math.floor(i / keys));
    if (x.sums.length === 0 || [...x.sums].sort((a, b) => a - b).join() !== want.join())
      fail(`${x.backend}: the ${x.read} records after the savepoint summed to ${x.sums.join(", ")}, not ${want.join(", ")}`);
    if (!x.restart) continue;
    if (x.restart.opens.length !== PARALLELISM || x.restart.opens.some((o) => o.recovery === "rebuilt"))
      fail(`${x.backend}: the restarted worker logged ${x.restart.opens.map((o) => o.recovery).join(", ")}, not ${PARALLELISM} local recoveries`);
    if (x.restart.stateEntries !== sp) fail(`${x.backend}: after the restart the job holds ${x.restart.stateEntries} entries, the savepoint ${sp}`);
  }
}

function report(runs: SavepointBenchRun[]): void {
  console.log(
    `\nsavepoint: one rolling-sum entry per key, parallelism ${PARALLELISM}, ${PARTITIONS} input partitions; ` +
      "baseline = one plain read of the job's changelog (readToEnd, read_committed): Kafka Streams has no savepoint, and the read is the floor of both",
  );
  printTable(
    [
      "keys",
      "changelog read s",
      "savepoint s",
      "vs read",
      "savepoint MB",
      "B/key",
      "restore: seed s",
      "cold rebuild s",
      "seed+rebuild vs read",
      "embedded: cold rebuild s",
      "embedded: local-recovery restart s",
    ],
    runs.map((r) => {
      const memory = on(r, "memory");
      const embedded = on(r, "embedded");
      return [
        fmt(r.keys),
        seconds(r.changelog.readMs),
        seconds(r.savepoint.ms),
        ratio(r.savepoint.ms, r.changelog.readMs),
        fmt(r.savepoint.bytes / 1e6, 2),
        fmt(r.savepoint.bytes / r.keys, 1),
        memory ? seconds(memory.seedMs) : "-",
        seconds(slowest(memory?.rebuilds)),
        memory ? ratio(memory.seedMs + slowest(memory.rebuilds), r.changelog.readMs) : "-",
        seconds(slowest(embedded?.rebuilds)),
        embedded ? seconds(slowest(embedded.restart?.opens)) : "not measured",
      ];
    }),
  );
  for (const r of runs) {
    const p = r.savepoint.phases;
    console.log(
      `  ${fmt(r.keys)} keys: savepoint ${r.savepoint.id}: paused at ${seconds(p.pausedMs)} s, drained at ${seconds(p.drainedMs)} s, manifest at ${seconds(p.writtenMs)} s ` +
        `(call ${seconds(r.savepoint.callMs)} s); state file ${fmt(r.savepoint.stateBytes)} B, manifest ${fmt(r.savepoint.manifestBytes)} B; ` +
        `changelog ${fmt(r.changelog.records)} records, ${fmt(r.changelog.bytes)} B on disk in ${fmt(r.changelog.offsets)} offsets; job A read the keys in ${seconds(r.feed.jobMs)} s`,
    );
    for (const x of r.restores) {
      const opens = (list: readonly StateOpen[]) => list.map((o) => `p${o.partition} ${o.recovery} ${fmt(o.entries)} entries ${fmt(o.ms)} ms`).join(", ");
      console.log(
        `    ${x.backend}: seed ${seconds(x.seedMs)} s (checked at ${seconds(x.phases.checkedMs)} s, seeded at ${seconds(x.phases.seededMs)} s, offsets set at ${seconds(x.phases.offsetsSetMs)} s); ` +
          `first units ${opens(x.rebuilds)}; state ${fmt(x.stateEntries)} entries` +
          (x.restart ? `; after the restart ${opens(x.restart.opens)}; state ${fmt(x.restart.stateEntries)} entries` : ""),
      );
    }
  }
  if (!BACKENDS.includes("embedded")) console.log("  local-recovery restart: not measured (--backends without embedded)");
}

async function main(): Promise<void> {
  console.log(`savepoint: ${KEYS.map((n) => fmt(n)).join(", ")} keys, parallelism ${PARALLELISM}; ${machineLine()}`);
  const dir = mkdtempSync(join(tmpdir(), "sage-bench-savepoint-"));
  let server: DevServer | null = null;
  let broker: Broker | null = null;
  const runs: SavepointBenchRun[] = [];
  const failures: string[] = [];
  const loads: Record<string, string> = {};
  try {
    server = await startScratchServer(dir);
    broker = startBroker({ port: await freePort(), controllerPort: await freePort(), dataDir: join(dir, "kafka") });
    for (const keys of KEYS) {
      loads[keys] = load();
      console.log(`\n${fmt(keys)} keys: load average before ${loads[keys]}`);
      try {
        const r = await measureSavepoint({
          server,
          brokers: broker.address,
          brokerDataDir: join(dir, "kafka"),
          dir,
          keys,
          parallelism: PARALLELISM,
          partitions: PARTITIONS,
          embedded: BACKENDS.includes("embedded"),
          log: (l) => console.log(`  ${l}`),
        });
        check(r, failures);
        runs.push(r);
      } catch (err) {
        console.log(`  ${fmt(keys)} keys FAILED: ${(err as Error).stack ?? String(err)}`);
        failures.push(`${keys} keys did not complete: ${(err as Error).message.split("\n")[0]}`);
      }
    }
  } finally {
    broker?.stop();
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  if (runs.length > 0) report(runs);
  if (!SMOKE && failures.length === 0)
    console.log(`\nsaved ${saveResult("savepoint", { parallelism: PARALLELISM, partitions: PARTITIONS, loadBefore: loads, backends: BACKENDS, runs })}`);
  if (failures.length > 0) {
    console.log(`\nsavepoint: FAILED:\n  ${failures.join("\n  ")}`);
    process.exit(1);
  }
  console.log(`\nsavepoint: every size ran; each savepoint held one entry per key and each restored job's state equalled it`);
}

await main();
process.exit(0);
