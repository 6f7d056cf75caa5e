/**
 * Case `bounded`: 1M events through `map`, `map`, `filter` and a file sink, durable on Temporal,
 * side by side with a plain in-process loop (the limit), SAGE's own LocalEnvironment (the peer, fed
 * through `from_source`, its fastest form; `from_batch` as a second row) and the naive Temporal
 * design (a workflow per record, an activity per operator, on a sample).
 * A second durable row runs with stage threads off (`worker.threads: 0`), as before issue 19.
 * Targets: durable and at least SAGE's records/s; at least 100x the naive design; issue 19: at
 * least 1.0x the plain loop and 3x SAGE's `from_source`.
 */
import { readFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import type { BenchCase, BenchContext, CaseReport } from "../case.js";
import { perSecond, ratio } from "../case.js";
import { runNaive } from "../naive/run.js";
import { plainLoop, sageBaseline, sagePython, ISAGE_VERSION, type SageSourceForm } from "./baselines.js";
import type { ClickEvent } from "./events.js";
import { boundedInput, boundedJob, type BoundedInput } from "./job.js";

/** Records the naive design gets: its rate is extrapolated from this sample. */
const NAIVE_SAMPLE = { full: 1_000, smoke: 50 };

interface Row {
  label: string;
  durable: boolean;
  records: number;
  out: number;
  seconds: number | null;
  note?: string;
}

/** SAGE's two ways to read the input; "vs SAGE" is against the first, its fastest. */
const SAGE_FORMS: { form: SageSourceForm; label: string }[] = [
  { form: "source", label: `SAGE ${ISAGE_VERSION} from_source (not durable)` },
  { form: "batch", label: `SAGE ${ISAGE_VERSION} from_batch (slowest form, not durable)` },
];

function sameLines(a: string, b: string): boolean {
  return readFileSync(a).equals(readFileSync(b));
}

/** SAGE's rows, each output checked line for line against the plain loop's. */
async function sageRows(ctx: BenchContext, input: BoundedInput, loopOut: string, checks: CaseReport["checks"], notes: string[]): Promise<Row[]> {
  const py = sagePython(ctx.log);
  const rows: Row[] = [];
  for (const { form, label } of SAGE_FORMS) {
    ctx.log(`bounded: SAGE (isage ${ISAGE_VERSION}, LocalEnvironment, from_${form})`);
    const out = join(ctx.dir, `bounded-sage-py-${form}.jsonl`);
    const sage = "python" in py ? await sageBaseline(py.python, input.path, out, form) : py;
    if ("unavailable" in sage) {
      rows.push({ label, durable: false, records: input.records, out: 0, seconds: null, note: sage.unavailable });
      notes.push(`SAGE from_${form} not measured: ${sage.unavailable}`);
      continue;
    }
    checks.push({ what: `SAGE from_${form} read all ${input.records} events`, ok: sage.in === input.records });
    checks.push({ what: `SAGE from_${form} wrote the same lines as the plain loop`, ok: sameLines(out, loopOut) });
    rows.push({ label, durable: false, records: sage.in, out: sage.out, seconds: sage.seconds });
  }
  return rows;
}

async function run(ctx: BenchContext): Promise<CaseReport> {
  const input = await boundedInput(ctx);
  const checks: CaseReport["checks"] = [];
  const notes: string[] = [];

  ctx.log("bounded: plain TypeScript loop");
  const loopOut = join(ctx.dir, "bounded-loop.jsonl");
  const loop = await plainLoop(input.path, loopOut);
  checks.push({ what: `plain loop read all ${input.records} events`, ok: loop.in === input.records });
  const loopRow: Row = { label: "plain TS loop (in process, not durable)", durable: false, records: loop.in, out: loop.out, seconds: loop.seconds };
  const sage = await sageRows(ctx, input, loopOut, checks, notes);

  const sample = NAIVE_SAMPLE[ctx.size];
  ctx.log(`bounded: naive Temporal on a ${sample}-event sample`);
  const events = readFileSync(input.path, "utf8")
    .split("\n", sample)
    .map((l) => JSON.parse(l) as ClickEvent);
  const naive = await runNaive((await ctx.server()).address, events, join(ctx.dir, "bounded-naive.jsonl"));
  const expectedNaive = events.filter((e) => e.kind !== "view").length;
  checks.push({ what: `naive Temporal wrote every kept record of its sample (${naive.written}/${expectedNaive})`, ok: naive.written === expectedNaive });
  const naiveRow: Row = {
    label: `naive Temporal (workflow per record, ${sample}-record sample)`,
    durable: true,
    records: naive.records,
    out: naive.written,
    seconds: naive.seconds,
    note: `extrapolated: ${(((input.records / naive.records) * naive.seconds) / 3600).toFixed(2)} h for ${input.records.toLocaleString("en-US")}`,
  };

  const job = await boundedJob(ctx, 1);
  const same = sameLines(job.output, loopOut);
  checks.push({ what: "sage on Temporal wrote exactly the plain loop's lines", ok: same });
  checks.push({ what: `sage on Temporal read all ${input.records} events`, ok: job.result.counts.events?.out === input.records });
  const oursRow: Row = {
    label: `sage on Temporal, 1 worker, ${availableParallelism()} stage threads (default; durable)`,
    durable: true,
    records: input.records,
    out: job.result.counts.out?.in ?? 0,
    seconds: job.seconds,
  };
  // The same job with stage threads off: every stage on the worker's main thread (as before issue 19).
  const mainOnly = await boundedJob(ctx, 1, 0);
  checks.push({ what: "sage on Temporal without stage threads wrote exactly the plain loop's lines", ok: sameLines(mainOnly.output, loopOut) });
  const mainOnlyRow: Row = {
    label: "sage on Temporal, 1 worker, worker.threads 0 (durable)",
    durable: true,
    records: input.records,
    out: mainOnly.result.counts.out?.in ?? 0,
    seconds: mainOnly.seconds,
  };
  const rows = [loopRow, ...sage, naiveRow, mainOnlyRow, oursRow];

  const rate = (r: Row | undefined) => (r && r.seconds !== null ? r.records / r.seconds : NaN);
  const loopRate = rate(loopRow);
  const sageRate = rate(sage[0]);
  const naiveRate = rate(naiveRow);
  const ours = rate(oursRow);
  notes.push(
    Number.isNaN(sageRate)
      ? "target durable >= SAGE: not decidable (SAGE from_source not measured)"
      : `target durable >= SAGE's records/s (from_source, its fastest form): ${ours >= sageRate ? "met" : "NOT met"} (${ratio(ours, sageRate)})`,
    `target >= 1.0x the plain loop (issue 19): ${ours >= loopRate ? "met" : "NOT met"} (${ratio(ours, loopRate)})`,
    Number.isNaN(sageRate)
      ? "target >= 3x SAGE from_source (issue 19): not decidable"
      : `target >= 3x SAGE from_source (issue 19): ${ours >= 3 * sageRate ? "met" : "NOT met"} (${ratio(ours, sageRate)})`,
    `stage threads vs worker.threads 0: ${ratio(ours, rate(mainOnlyRow))}`,
    `target >= 100x naive Temporal: ${ours >= 100 * naiveRate ? "met" : "NOT met"} (${ratio(ours, naiveRate)})`,
    `sage on Temporal: ${job.result.splitsTotal} splits, ${job.result.activities} activities, ${job.history.events} history events`,
  );
  return {
    title: `bounded: ${input.records.toLocaleString("en-US")} events (${(input.bytes / 1024 ** 2).toFixed(1)} MiB JSON Lines) -> map -> map -> filter -> file`,
    columns: ["case", "records", "wall s", "records/s", "vs plain loop", "vs SAGE", "vs naive", "note"],
    rows: rows.map((r) => [
      r.label,
      r.records.toLocaleString("en-US"),
      r.seconds === null ? "-" : r.seconds.toFixed(2),
      r.seconds === null ? "not measured" : perSecond(r.records, r.seconds),
      ratio(rate(r), loopRate),
      ratio(rate(r), sageRate),
      ratio(rate(r), naiveRate),
      r.note ?? "",
    ]),
    chart: {
      unit: "records/s (input events per second of wall time)",
      bars: rows.map((r) => ({ label: r.label, value: r.seconds === null ? null : rate(r), durable: r.durable })),
    },
    checks,
    notes,
    data: {
      records: input.records,
      inputBytes: input.bytes,
      rows,
      job: { splits: job.result.splitsTotal, activities: job.result.activities, history: job.history, cpu: job.cpu, settings: job.settings },
    },
  };
}

/** The registry entry. */
export const boundedCase: BenchCase = {
  name: "bounded",
  summary: "1M events, map/map/filter/file sink: durable vs plain loop, SAGE LocalEnvironment (from_source, from_batch), naive Temporal",
  inDefaultRun: true,
  inSmoke: true,
  run,
};
