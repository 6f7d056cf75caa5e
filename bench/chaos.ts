/**
 * Chaos runner, outside `npm test`: each fault under a running job, on a real dev server and a real
 * broker it starts itself, with records lost, records duplicated and how long output stalled.
 *
 *   npx tsx bench/chaos.ts [--records 200000] [--faults server-kill,broker-pause,clock-skew,disk-full] [--rate 3000]
 *                          [--down-seconds 5] [--pause-seconds 25] [--session-timeout 10] [--skew-minutes 7]
 *                          [--skew-phase-seconds 10] [--hold-seconds 10] [--keep] [--smoke]
 *                          [--job kafka|keyed] [--services 200] [--worker-down-seconds 5] [--broker-down-seconds 20]
 *
 * Kafka faults run the Kafka -> Kafka job (bench/kafka-pipeline.ts) fed at `--rate` records/s and
 * read back with read_committed; disk-full runs a bounded job with the file sink (needs root for
 * its tmpfs); clock-skew needs libfaketime (`bash scripts/install-faketime.sh`). Writes
 * `bench/results/<date>-chaos.json` (not with `--smoke`: 20k records, server-kill only, for CI).
 * `--job keyed` runs the faults against the keyed, event-time windowed job instead (bench/chaos/keyed-run.ts:
 * server-kill, broker-pause, clock-skew, worker-kill and broker-kill, the last on three brokers of its
 * own; disk-full is the file sink's, not run): every
 * window result read back must equal the reference computed from the input, once.
 * `--temporal cluster` runs against the real server instead of the dev server (scripts/temporal-cluster.sh:
 * PostgreSQL, four service processes; scripts/install-temporal-server.sh builds it) and adds history-kill;
 * server-kill then kills -9 all four services.
 * Exits 1 when a fault lost or duplicated a record, or could not run.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { machineLine, printTable, saveResult } from "./machine.js";
import { ChaosEnv, type ChaosTemporal } from "./chaos/env.js";
import { historyKill } from "./chaos/history-kill.js";
import { brokerPause, clockSkew, serverKill, type FaultSettings } from "./chaos/faults.js";
import { runDiskFull } from "./chaos/disk-full.js";
import { runStreamFault, type FaultResult, type StreamFault } from "./chaos/stream-run.js";
import { runKeyedFault } from "./chaos/keyed-run.js";
import { workerKill } from "./chaos/worker-kill.js";
import { brokerKill } from "./chaos/broker-kill.js";

const JOB = arg("job", "kafka");
if (JOB !== "kafka" && JOB !== "keyed") {
  console.error(`chaos: --job is kafka or keyed, not ${JOB}`);
  process.exit(2);
}
const KEYED = JOB === "keyed";
const ALL = KEYED ? ["server-kill", "broker-pause", "clock-skew", "worker-kill", "broker-kill"] : ["server-kill", "broker-pause", "clock-skew", "disk-full"];
const TEMPORAL = arg("temporal", "dev") as ChaosTemporal;
if (TEMPORAL === "cluster") ALL.push("history-kill");

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback;
}
function num(name: string, fallback: number): number {
  const v = Number(arg(name, String(fallback)));
  if (!Number.isFinite(v) || v <= 0) {
    console.error(`chaos: --${name} needs a positive number`);
    process.exit(2);
  }
  return v;
}

const SMOKE = process.argv.includes("--smoke");
const RECORDS = num("records", SMOKE ? 20_000 : 200_000);
// disk-full is the bounded file sink's fault: the keyed job writes Kafka, so it is skipped there.
const SKIPPED = KEYED ? ["disk-full"] : [];
const FAULTS = arg("faults", SMOKE ? "server-kill" : ALL.join(","))
  .split(",")
  .filter((f) => !SKIPPED.includes(f));
const RATE = num("rate", KEYED ? 2_000 : 3_000);
const SESSION_TIMEOUT = num("session-timeout", 10);
const HOLD = num("hold-seconds", 10);
const SETTINGS: FaultSettings = {
  serverDownSeconds: num("down-seconds", 5),
  pauseSeconds: num("pause-seconds", 25),
  skewMinutes: num("skew-minutes", 7),
  skewPhaseSeconds: num("skew-phase-seconds", 10),
};
if (TEMPORAL !== "dev" && TEMPORAL !== "cluster") {
  console.error(`chaos: --temporal is dev or cluster`);
  process.exit(2);
}
const unknown = FAULTS.filter((f) => !ALL.includes(f));
if (unknown.length > 0) {
  console.error(`chaos: unknown fault(s) ${unknown.join(", ")}; known: ${ALL.join(", ")}`);
  process.exit(2);
}

const STREAM_FAULTS: Record<string, StreamFault> = {
  "server-kill": serverKill(SETTINGS, TEMPORAL === "cluster"),
  "broker-pause": brokerPause(SETTINGS, SESSION_TIMEOUT),
  "clock-skew": clockSkew(SETTINGS),
  "history-kill": historyKill(SETTINGS, TEMPORAL),
  "worker-kill": workerKill(num("worker-down-seconds", 5)),
  "broker-kill": brokerKill(num("broker-down-seconds", 20)),
};

const log = (m: string) => process.stderr.write(`[chaos] ${m}\n`);

/** A fault that could not run or did not finish: a row that says so. */
function notRun(fault: string, summary: string, why: string): FaultResult {
  return {
    fault,
    summary,
    ok: false,
    recordsIn: 0,
    readBack: 0,
    lost: 0,
    duplicated: 0,
    unexpected: 0,
    sampleLost: [],
    sampleDuplicated: [],
    stallSeconds: NaN,
    gapBeforeSeconds: NaN,
    firstOutputAfterSeconds: null,
    jobSeconds: NaN,
    faultSeconds: NaN,
    countedByJob: null,
    details: {},
    problems: [why],
  };
}

async function runOne(env: ChaosEnv, name: string): Promise<FaultResult> {
  if (name === "disk-full") return runDiskFull(env, RECORDS, HOLD);
  const fault = STREAM_FAULTS[name]!;
  const why = fault.unavailable?.();
  if (why) return notRun(name, fault.summary, `not run: ${why}`);
  if (KEYED) {
    const options = { records: RECORDS, rate: RATE, services: num("services", 200), sessionTimeoutSeconds: SESSION_TIMEOUT };
    return runKeyedFault(env, fault, { ...options, faultAfter: 0.3, idleSeconds: 120 });
  }
  return runStreamFault(env, fault, { records: RECORDS, rate: RATE, faultAfter: 0.3, idleSeconds: 120, sessionTimeoutSeconds: SESSION_TIMEOUT });
}

const s = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : "-");

function report(results: FaultResult[]): void {
  console.log(`\nchaos: ${RECORDS} records per fault; Temporal ${TEMPORAL === "cluster" ? "cluster" : "dev server"}; ${machineLine()}`);
  if (KEYED) console.log("keyed job: records in / read back count window results; duplicated includes windows with other values or none in the reference");
  if (KEYED) console.log("disk-full is not run for the keyed job: it is the bounded file sink's fault");
  printTable(
    ["fault", "records in", "read back", "lost", "duplicated", "stall s", "max gap before s", "fault s", "job s", "ok"],
    results.map((r) => [
      r.fault,
      String(r.recordsIn),
      String(r.readBack),
      String(r.lost),
      String(r.duplicated + r.unexpected),
      s(r.stallSeconds),
      s(r.gapBeforeSeconds),
      s(r.faultSeconds),
      s(r.jobSeconds),
      r.ok ? "ok" : "FAILED",
    ]),
  );
  for (const r of results) {
    console.log(`\n${r.fault}: ${r.summary}`);
    console.log(`  ${JSON.stringify({ ...r.details, countedByJob: r.countedByJob, firstOutputAfterSeconds: r.firstOutputAfterSeconds })}`);
    if (r.lost > 0) console.log(`  lost ids (sample): ${r.sampleLost.join(", ")}`);
    if (r.duplicated > 0) console.log(`  duplicated ids (sample): ${r.sampleDuplicated.join(", ")}`);
    for (const p of r.problems) console.log(`  problem: ${p}`);
  }
}

const dir = mkdtempSync(join(tmpdir(), "sage-chaos-"));
log(`scratch dir ${dir}`);
const env = await ChaosEnv.start(dir, log, TEMPORAL);
const results: FaultResult[] = [];
try {
  for (const name of FAULTS) {
    log(`fault ${name}`);
    try {
      results.push(await runOne(env, name));
    } catch (err) {
      results.push(notRun(name, name, `did not run to the end: ${(err as Error).stack ?? String(err)}`));
    }
    log(`${name}: ${results[results.length - 1]!.ok ? "ok" : "FAILED"}`);
  }
} finally {
  await env.stop();
  if (!process.argv.includes("--keep")) rmSync(dir, { recursive: true, force: true });
}
report(results);
if (!SMOKE) {
  const settings = { temporal: TEMPORAL, rate: RATE, sessionTimeoutSeconds: SESSION_TIMEOUT, holdSeconds: HOLD, ...SETTINGS };
  console.log(
    `\nsaved ${saveResult(`${KEYED ? "chaos-keyed" : "chaos"}${TEMPORAL === "cluster" ? "-cluster" : ""}`, { records: RECORDS, settings, results })}`,
  );
}
const failed = results.filter((r) => !r.ok);
if (failed.length > 0) {
  console.log(`\nchaos: ${failed.length} fault(s) failed: ${failed.map((r) => r.fault).join(", ")}`);
  process.exit(1);
}
console.log(`\nchaos: ${results.length} fault(s), 0 lost, 0 duplicated`);
process.exit(0);
