/**
 * `npm run bench [-- <case>...] [--records N] [--list]`: runs each case against its baselines in the
 * same run on one fresh dev server, prints one table per case with the ratios, and writes
 * `bench/results/<date>-<case>.json` and `.svg`. `npm run bench -- smoke` runs every case small
 * (seconds each) and asserts only that every case ran and every record arrived, never a time.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startScratchServer, type DevServer } from "../dev/temporal-server.js";
import type { BenchCase, BenchContext, BenchSize, CaseReport } from "./case.js";
import { CASES } from "./cases.js";
import { barChart } from "./chart.js";
import { machineLine, printTable, saveResult } from "./machine.js";

// Cases start several workers and shims on one machine: no /metrics endpoints unless asked (monitoring.port would clash).
process.env.SAGE_MONITORING_ENABLED ??= "false";

const SHARED_NOTE = "figures are wall-clock on this machine; compare the ratios of rows measured in the same run";

function parseArgs(argv: string[]): { names: string[]; size: BenchSize; records: number | undefined; list: boolean } {
  const names: string[] = [];
  let size: BenchSize = "full";
  let records: number | undefined;
  let list = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--records") records = Number(argv[++i]);
    else if (a === "--list") list = true;
    else if (a === "smoke") size = "smoke";
    else names.push(a);
  }
  if (records !== undefined && !(Number.isInteger(records) && records > 0)) throw new Error("--records needs a positive integer");
  return { names, size, records, list };
}

function select(names: string[], size: BenchSize): BenchCase[] {
  const unknown = names.filter((n) => !CASES.some((c) => c.name === n));
  if (unknown.length > 0) throw new Error(`unknown case(s) ${unknown.join(", ")}; known: ${CASES.map((c) => c.name).join(", ")}, smoke`);
  if (names.length > 0) return CASES.filter((c) => names.includes(c.name));
  return CASES.filter((c) => (size === "smoke" ? c.inSmoke : c.inDefaultRun));
}

function print(report: CaseReport): void {
  console.log(`\n== ${report.title}`);
  if (report.rows.length > 0) printTable(report.columns, report.rows);
  for (const n of report.notes) console.log(`  ${n}`);
  for (const c of report.checks) console.log(`  [${c.ok ? "ok" : "FAILED"}] ${c.what}`);
}

/** A usage error: printed without a stack, exit 2. */
function usage(err: unknown): never {
  console.error(`bench: ${(err as Error).message}`);
  process.exit(2);
}

let args: ReturnType<typeof parseArgs>;
try {
  args = parseArgs(process.argv.slice(2));
} catch (err) {
  usage(err);
}
if (args.list) {
  for (const c of CASES) console.log(`${c.name.padEnd(12)} ${c.summary}${c.inDefaultRun ? "" : " (only when named)"}`);
  process.exit(0);
}
let cases: BenchCase[];
try {
  cases = select(args.names, args.size);
} catch (err) {
  usage(err);
}
const dir = mkdtempSync(join(tmpdir(), "sage-bench-"));
const started: { server: Promise<DevServer> | null } = { server: null };
const memo = new Map<string, Promise<unknown>>();
const ctx: BenchContext = {
  size: args.size,
  dir,
  records: args.records,
  server: () => (started.server ??= startScratchServer(dir, { log: (m) => process.stderr.write(`${m}\n`) })),
  shared<T>(key: string, make: () => Promise<T>): Promise<T> {
    let p = memo.get(key) as Promise<T> | undefined;
    if (!p) memo.set(key, (p = make()));
    return p;
  },
  log: (m) => process.stderr.write(`[bench] ${m}\n`),
};

console.log(`machine: ${machineLine()}`);
console.log(`note: ${SHARED_NOTE}`);
const failed: string[] = [];
try {
  for (const c of cases) {
    ctx.log(`case ${c.name} (${args.size})`);
    let report: CaseReport;
    try {
      report = await c.run(ctx);
    } catch (err) {
      console.log(`\n== ${c.name}: FAILED: ${(err as Error).stack ?? String(err)}`);
      failed.push(`${c.name} did not run to the end`);
      continue;
    }
    print(report);
    failed.push(...report.checks.filter((k) => !k.ok).map((k) => `${c.name}: ${k.what}`));
    if (args.size === "full" && report.data !== undefined) {
      const json = saveResult(c.name, {
        case: c.name,
        title: report.title,
        columns: report.columns,
        rows: report.rows,
        notes: report.notes,
        checks: report.checks,
        data: report.data,
      });
      console.log(`  results: ${json}`);
      if (report.chart) {
        const svg = json.replace(/\.json$/, ".svg");
        writeFileSync(svg, barChart(report.title, machineLine(), report.chart.unit, report.chart.bars));
        console.log(`  chart: ${svg}`);
      }
    }
  }
} finally {
  if (started.server) await (await started.server).stop();
  rmSync(dir, { recursive: true, force: true });
}
if (failed.length > 0) {
  console.log(`\nbench: ${failed.length} check(s) failed:\n  ${failed.join("\n  ")}`);
  process.exit(1);
}
console.log(`\nbench: ${cases.length} case(s) ran (${cases.map((c) => c.name).join(", ")}), every check passed`);
