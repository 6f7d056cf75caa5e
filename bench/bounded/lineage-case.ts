/**
 * Case `bounded-lineage`: what per-line lineage of file outputs (`execution.lineage`) costs the
 * bounded job (`bounded` case's pipeline and input, 1 worker): the job with lineage off and on,
 * alternating over two rounds in the same run (off, on, on, off), records/s and their ratio, and
 * the lineage bytes kept per output line (the sidecars and index under `<data-dir>/lineage`).
 * `npm run bench -- bounded-lineage [--records N]`.
 */
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import type { BenchCase, BenchContext, CaseReport } from "../case.js";
import { perSecond } from "../case.js";
import { runSageJob } from "../sage-job.js";
import { boundedInput } from "./job.js";
import pipeline from "./pipeline.js";

/** Bytes of every file under `dir` (0 when it does not exist). */
function bytesUnder(dir: string): number {
  let total = 0;
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return 0;
  }
  for (const name of names) {
    const path = join(dir, name);
    const info = statSync(path);
    total += info.isDirectory() ? bytesUnder(path) : info.size;
  }
  return total;
}

interface LineageRun {
  lineage: boolean;
  round: number;
  seconds: number;
  out: number;
  lineageBytes: number;
}

async function run(ctx: BenchContext): Promise<CaseReport> {
  const input = await boundedInput(ctx);
  const runs: LineageRun[] = [];
  for (const [i, lineage] of [false, true, true, false].entries()) {
    const round = Math.floor(i / 2) + 1;
    const label = `bounded-lineage-${lineage ? "on" : "off"}-r${round}`;
    const dir = join(ctx.dir, label);
    ctx.log(`bounded-lineage: round ${round}, lineage ${lineage ? "on" : "off"}`);
    const job = await runSageJob(await ctx.server(), {
      pipeline,
      pipelineFile: "bench/bounded/pipeline.ts",
      params: { input: input.path, output: join(ctx.dir, `${label}.jsonl`) },
      workers: 1,
      settings: { SAGE_EXECUTION_LINEAGE: String(lineage) },
      dir,
      label,
    });
    const done: LineageRun = {
      lineage,
      round,
      seconds: job.seconds,
      out: job.result.counts.out?.in ?? 0,
      lineageBytes: bytesUnder(join(dir, "data", "lineage")),
    };
    ctx.log(`bounded-lineage: ${done.seconds.toFixed(2)} s, ${done.out} lines, ${done.lineageBytes} lineage bytes`);
    runs.push(done);
  }
  const rate = (r: LineageRun) => input.records / r.seconds;
  const mean = (lineage: boolean) => {
    const rs = runs.filter((r) => r.lineage === lineage);
    return rs.reduce((n, r) => n + rate(r), 0) / rs.length;
  };
  const on = runs.filter((r) => r.lineage);
  const perLine = on.map((r) => r.lineageBytes / Math.max(1, r.out));
  const checks = [
    { what: "every run wrote the same number of lines", ok: runs.every((r) => r.out === runs[0]!.out && r.out > 0) },
    { what: "lineage off kept no lineage files", ok: runs.every((r) => r.lineage || r.lineageBytes === 0) },
    { what: "lineage on kept lineage for its output", ok: on.every((r) => r.lineageBytes > 0) },
  ];
  return {
    title: `bounded-lineage: ${input.records.toLocaleString("en-US")} events -> map -> map -> filter -> file, execution.lineage off vs on (1 worker)`,
    columns: ["run", "lineage", "wall s", "records/s", "lineage bytes / output line"],
    rows: runs.map((r) => [
      `round ${r.round}`,
      r.lineage ? "on" : "off",
      r.seconds.toFixed(2),
      perSecond(input.records, r.seconds),
      r.lineage ? (r.lineageBytes / Math.max(1, r.out)).toFixed(2) : "-",
    ]),
    checks,
    notes: [
      `throughput with lineage on / off (mean of each side's records/s): ${(mean(true) / mean(false)).toFixed(3)}`,
      `lineage bytes per output line: ${perLine.map((b) => b.toFixed(2)).join(", ")} (${runs[0]!.out.toLocaleString("en-US")} lines)`,
    ],
    data: { records: input.records, inputBytes: input.bytes, runs },
  };
}

/** The registry entry. */
export const boundedLineageCase: BenchCase = {
  name: "bounded-lineage",
  summary: "the bounded job with execution.lineage off and on, alternating: records/s ratio and lineage bytes per output line",
  inDefaultRun: false,
  inSmoke: false,
  run,
};
