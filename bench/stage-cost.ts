/**
 * Tuning aid (not a case): the cost of the stage runner itself, without Temporal. Runs the bounded
 * job's fused stage in this process over the input's 4 MiB splits one after another, then the plain
 * loop over the same input, `--repeat` times alternating, and prints the ratios of wall and CPU time
 * (1.00 = no overhead; CPU time is the steadier figure on a shared machine).
 *
 *   npx tsx bench/stage-cost.ts [--repeat N] [--records N]
 */
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pino } from "pino";
import { OperatorRegistry } from "../activities/registry.js";
import { runStage } from "../activities/stage/run-stage.js";
import type { StageInput } from "../core/plan/job.js";
import { plainLoop } from "./bounded/baselines.js";
import { ensureEvents } from "./bounded/events.js";
import pipeline from "./bounded/pipeline.js";
import { machineLine } from "./machine.js";

const arg = (name: string, fallback: number): number => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const repeat = arg("--repeat", 4);
const records = arg("--records", 1_000_000);
const SPLIT = 4 * 1024 * 1024;

const input = resolve(".sage", "bench", `events-${records}.jsonl`);
await ensureEvents(input, records);
const size = statSync(input).size;
const logger = pino({ level: "warn" });
const registry = new OperatorRegistry(pipeline, logger);
const compiled = registry.compile(2, true);
const stage = compiled.plan.stages[0]!;
const dir = mkdtempSync(join(tmpdir(), "sage-stage-cost-"));
console.log(`machine: ${machineLine()}; ${records.toLocaleString("en-US")} events, ${Math.ceil(size / SPLIT)} splits`);
try {
  for (let rep = 0; rep < repeat; rep++) {
    const t = performance.now();
    const c0 = process.cpuUsage();
    for (let i = 0, start = 0; start < size; i++, start += SPLIT) {
      const input_: StageInput = {
        jobId: `cost-${rep}`,
        pipeline: pipeline.name,
        planHash: compiled.plan.hash,
        parallelism: 2,
        fusion: true,
        stage: stage.id,
        params: { input, output: join(dir, "out.jsonl") },
        shard: `${stage.id}-${String(i).padStart(6, "0")}`,
        split: { stage: stage.id, index: i, descriptor: { path: input, start, end: Math.min(size, start + SPLIT) } },
        runtime: {
          activityTimeoutMs: 60_000,
          heartbeatTimeoutMs: 10_000,
          maxBatchBytes: 512 * 1024,
          splitBytes: SPLIT,
          splitPrefetch: 1,
          localActivities: false,
          eventsPerRun: 2000,
          historyBytesPerRun: 2 * 1024 * 1024,
          deadLetterPath: null,
        },
      };
      await runStage(input_, { registry, dataDir: dir, logger, heartbeat: () => {}, cancelled: () => false }, logger);
    }
    const stageSeconds = (performance.now() - t) / 1000;
    const c1 = process.cpuUsage(c0);
    const loop = await plainLoop(input, join(dir, "loop.jsonl"));
    const c2 = process.cpuUsage();
    const cpu = (u: NodeJS.CpuUsage) => (u.user + u.system) / 1e6;
    const stageCpu = cpu(c1);
    const loopCpu = cpu(c2) - cpu(c0) - stageCpu;
    console.log(
      `stage runner ${stageSeconds.toFixed(2)} s (CPU ${stageCpu.toFixed(2)} s), plain loop ${loop.seconds.toFixed(2)} s (CPU ${loopCpu.toFixed(2)} s); ` +
        `ratio wall ${(stageSeconds / loop.seconds).toFixed(3)}, CPU ${(stageCpu / loopCpu).toFixed(3)}`,
    );
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
