/**
 * Tuning aid (not a case): runs the bounded job under several settings on one dev server, in turn,
 * and prints per run the wall time, CPU seconds of workers and server, how busy the machine was,
 * and each worker's occupancy (share of the stage phase it ran a split: the figure that shows a
 * second worker waiting, whatever else loads the machine).
 *
 *   npx tsx bench/tune.ts [--repeat N] [--records N] '{"WORKERS":"2","SAGE_WORKER_MAX_CONCURRENT_ACTIVITIES":"8"}' ...
 *
 * Each argument is one variant: `WORKERS` plus `SAGE_*` settings for client and workers.
 * `SAGE_BENCH_PROFILE_DIR=<dir>` makes the workers write CPU profiles there.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { startScratchServer } from "../dev/temporal-server.js";
import { ensureEvents } from "./bounded/events.js";
import pipeline from "./bounded/pipeline.js";
import { machineLine } from "./machine.js";
import { runSageJob } from "./sage-job.js";

const args = process.argv.slice(2);
const flag = (name: string, fallback: number): number => {
  const i = args.indexOf(name);
  if (i < 0) return fallback;
  const v = Number(args.splice(i, 2)[1]);
  if (!Number.isInteger(v) || v <= 0) throw new Error(`${name} needs a positive integer`);
  return v;
};
const repeat = flag("--repeat", 1);
const records = flag("--records", 1_000_000);
const variants = (args.length > 0 ? args : ["{}"]).map((a) => JSON.parse(a) as Record<string, string>);

const input = resolve(".sage", "bench", `events-${records}.jsonl`);
await ensureEvents(input, records);
const dir = mkdtempSync(join(tmpdir(), "sage-tune-"));
const server = await startScratchServer(dir);
console.log(`machine: ${machineLine()}; ${records.toLocaleString("en-US")} events`);
try {
  for (let i = 0; i < repeat; i++) {
    for (const [k, v] of variants.entries()) {
      const { WORKERS, ...settings } = v;
      const r = await runSageJob(server, {
        pipeline,
        pipelineFile: "bench/bounded/pipeline.ts",
        params: { input, output: join(dir, `out-${i}-${k}.jsonl`) },
        workers: Number(WORKERS ?? 1),
        settings,
        dir: join(dir, `w-${i}-${k}`),
        label: "tune",
      });
      const t = r.timeline;
      const occupancy = Object.values(t.occupancy)
        .map((x) => x.toFixed(2))
        .join("/");
      console.log(
        `${JSON.stringify(v)}: wall ${r.seconds.toFixed(2)} s, workers CPU ${r.cpu.workers?.toFixed(2)} s, server CPU ${r.cpu.server?.toFixed(2)} s, ` +
          `machine ${((r.cpu.machine ?? 0) / r.seconds).toFixed(2)} cores busy; occupancy ${occupancy}; ` +
          `${r.result.splitsTotal} splits, mean split ${(t.meanStageActivity * 1000).toFixed(0)} ms, queued ${(t.meanScheduleToStart * 1000).toFixed(0)} ms, commit ${(t.commit * 1000).toFixed(0)} ms`,
      );
    }
  }
} finally {
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
}
