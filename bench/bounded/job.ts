/**
 * The bounded job on Temporal as the bounded, history and scale cases run it: its input (generated
 * once and kept under `.sage/bench/`) and one durable run with a given number of workers. Runs are
 * shared within one `npm run bench`, so the 1-worker job is measured once for all three cases.
 */
import { join, resolve } from "node:path";
import type { BenchContext } from "../case.js";
import { runSageJob, type SageJobRun } from "../sage-job.js";
import { ensureEvents } from "./events.js";
import pipeline from "./pipeline.js";

/** Events of the full and the smoke run. */
export const FULL_RECORDS = 1_000_000;
export const SMOKE_RECORDS = 20_000;

/** The input file of this run and its size. */
export interface BoundedInput {
  path: string;
  records: number;
  bytes: number;
}

/** Records this run uses (`--records`, else by size). */
export function boundedRecords(ctx: BenchContext): number {
  return ctx.records ?? (ctx.size === "smoke" ? SMOKE_RECORDS : FULL_RECORDS);
}

/** The generated input for this run. */
export async function boundedInput(ctx: BenchContext): Promise<BoundedInput> {
  return ctx.shared("bounded-input", async () => {
    const records = boundedRecords(ctx);
    const path = resolve(".sage", "bench", `events-${records}.jsonl`);
    ctx.log(`bounded input: ${records.toLocaleString("en-US")} events (${path})`);
    return { path, records, bytes: await ensureEvents(path, records) };
  });
}

/**
 * One durable run of the bounded job with `workers` worker processes (shared within the run);
 * `threads`: the workers' `worker.threads` (default: unset, one per core).
 */
export async function boundedJob(ctx: BenchContext, workers: number, threads?: number): Promise<SageJobRun & { output: string }> {
  const variant = `${workers}w${threads === undefined ? "" : `-t${threads}`}`;
  return ctx.shared(`bounded-job-${variant}`, async () => {
    const input = await boundedInput(ctx);
    const output = join(ctx.dir, `bounded-sage-${variant}.jsonl`);
    ctx.log(`bounded: sage on Temporal, ${workers} worker(s)${threads === undefined ? "" : `, worker.threads ${threads}`}`);
    const run = await runSageJob(await ctx.server(), {
      pipeline,
      pipelineFile: "bench/bounded/pipeline.ts",
      params: { input: input.path, output },
      workers,
      ...(threads === undefined ? {} : { settings: { SAGE_WORKER_THREADS: String(threads) } }),
      dir: join(ctx.dir, `w${variant}`),
      label: `bounded-${variant}`,
    });
    return { ...run, output };
  });
}
