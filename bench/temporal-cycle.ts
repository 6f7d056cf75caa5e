/**
 * Temporal's own cost per activity on this machine, with nothing of Sage in it: the floor under a
 * streaming unit's cycle (issue 19). On a scratch dev server with the project's settings, one
 * worker runs no-op local activities back to back, then activities back to back, then the
 * partition workflow's shape: `--workflows` workflows get a batch signal of `--payload` random
 * bytes `--signals` times a second each, and run what is pending in one local activity that waits
 * `--activity-ms` (as a Kafka transaction would). It prints each case's time per activity, and for
 * the signalled case the gap between one activity's end and the next one's start, to compare with
 * the same gap in a Sage worker's debug log ("stage done": its time minus its ms is the start).
 *
 *   npx tsx bench/temporal-cycle.ts [--workflows 2] [--activity-ms 90] [--signals 18] [--payload 5000] [--seconds 20] [--promises 0,200] [--no-source-map]
 *
 * `--no-source-map` runs the workflows from a bundle whose inline source map is empty: the SDK maps
 * every frame of the stack it captures for each workflow-side promise through that map.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { Context } from "@temporalio/activity";
import { Client, Connection } from "@temporalio/client";
import { bundleWorkflowCode, DefaultLogger, NativeConnection, Runtime, Worker } from "@temporalio/worker";
import { startScratchServer } from "../dev/temporal-server.js";
import { machineLine, printTable } from "./machine.js";
import { percentile } from "./timeline.js";

function arg(name: string, fallback: string): number {
  const i = process.argv.indexOf(`--${name}`);
  return Number(i > 0 ? process.argv[i + 1] : fallback);
}
const WORKFLOWS = arg("workflows", "2");
const ACTIVITY_MS = arg("activity-ms", "90");
const SIGNALS = arg("signals", "18");
const PAYLOAD = arg("payload", "5000");
const SECONDS = arg("seconds", "20");
/** Nested async calls each unit of the signalled case awaits first (workflow-side promises; the SDK captures a stack for each). */
const PROMISES = (process.argv.includes("--promises") ? process.argv[process.argv.indexOf("--promises") + 1]! : "0").split(",").map(Number);
const TASK_QUEUE = "temporal-cycle";
const NO_SOURCE_MAP = process.argv.includes("--no-source-map");
/** More dev server dynamic config to try (`--server-config key=value`, repeatable, as in bench/kafka.ts). */
const DYNAMIC_CONFIG = process.argv.flatMap((a, i) => (a === "--server-config" && process.argv[i + 1] ? [process.argv[i + 1]!] : []));

/** The workflows' bundle with its inline source map replaced by an empty one (the SDK requires one). */
async function bundleWithoutSourceMap(workflowsPath: string): Promise<{ code: string }> {
  const { code } = await bundleWorkflowCode({ workflowsPath, logger: new DefaultLogger("WARN") });
  const at = code.lastIndexOf("//# sourceMappingURL=data:");
  const empty = Buffer.from(JSON.stringify({ version: 3, file: "workflow-bundle.js", sources: [], names: [], mappings: "" })).toString("base64");
  return { code: `${code.slice(0, at)}//# sourceMappingURL=data:application/json;base64,${empty}\n` };
}

async function main(): Promise<void> {
  console.log(`temporal-cycle: ${machineLine()}; workflow bundle ${NO_SOURCE_MAP ? "with an empty source map" : "with its source map"}`);
  Runtime.install({ logger: new DefaultLogger("WARN") });
  const dir = mkdtempSync(join(tmpdir(), "sage-temporal-cycle-"));
  const server = await startScratchServer(dir, { dynamicConfig: DYNAMIC_CONFIG });
  /** Each workflow's activity spans, [start, end] in ms. */
  const spans = new Map<string, Array<[number, number]>>();
  try {
    const worker = await Worker.create({
      connection: await NativeConnection.connect({ address: server.address }),
      taskQueue: TASK_QUEUE,
      ...(NO_SOURCE_MAP
        ? { workflowBundle: await bundleWithoutSourceMap(resolve("bench/temporal-cycle/workflows.ts")) }
        : { workflowsPath: resolve("bench/temporal-cycle/workflows.ts") }),
      activities: {
        async work(ms: number): Promise<number> {
          const id = Context.current().info.workflowExecution?.workflowId ?? "";
          const start = Date.now();
          if (ms > 0) await new Promise((r) => setTimeout(r, ms));
          spans.set(id, [...(spans.get(id) ?? []), [start, Date.now()]]);
          return 1;
        },
      },
    });
    const running = worker.run();
    const client = new Client({ connection: await Connection.connect({ address: server.address }) });
    const rows: string[][] = [];
    {
      // (The workflow cannot lower Error.stackTraceLimit to spare the hook: the SDK freezes Error in its context.)
      const n = 5_000;
      const started = performance.now();
      await client.workflow.execute("promisesOnly", { taskQueue: TASK_QUEUE, workflowId: `promises-${Date.now()}`, args: [n] });
      const ms = performance.now() - started;
      rows.push([`awaited async calls in one workflow task, no activity (${n})`, `${((ms * 1000) / n).toFixed(0)} µs per call`, "-", "-"]);
    }
    for (const [type, n] of [
      ["sequentialLocal", 300],
      ["sequentialRemote", 200],
      ["sequentialTimers", 20],
    ] as const) {
      const started = performance.now();
      await client.workflow.execute(type, { taskQueue: TASK_QUEUE, workflowId: `${type}-${Date.now()}`, args: [n] });
      const ms = performance.now() - started;
      rows.push([
        `${{ sequentialLocal: "local activities back to back, no-op", sequentialRemote: "activities back to back, no-op", sequentialTimers: "durable timers of 1 ms back to back" }[type]} (${n})`,
        (ms / n).toFixed(1),
        String(Math.round(n / (ms / 1000))),
        "-",
      ]);
    }
    for (const promises of PROMISES) {
      const handles = await Promise.all(
        Array.from({ length: WORKFLOWS }, (_, i) =>
          client.workflow.start("signalledLocal", {
            taskQueue: TASK_QUEUE,
            workflowId: `signalled-${promises}-${i}-${Date.now()}`,
            args: [ACTIVITY_MS, promises],
          }),
        ),
      );
      const end = Date.now() + SECONDS * 1000;
      while (Date.now() < end) {
        await Promise.all(handles.map((h) => h.signal("cycleBatch", new Uint8Array(randomBytes(PAYLOAD)))));
        await new Promise((r) => setTimeout(r, 1000 / SIGNALS));
      }
      await Promise.all(handles.map((h) => h.signal("cycleStop")));
      await Promise.all(handles.map((h) => h.result()));
      const gaps = handles
        .flatMap((h) => {
          const s = spans.get(h.workflowId) ?? [];
          return s.slice(1).map(([start], i) => start - s[i]![1]);
        })
        .sort((a, b) => a - b);
      const units = handles.reduce((n, h) => n + (spans.get(h.workflowId)?.length ?? 0), 0);
      rows.push([
        `${WORKFLOWS} workflows, ${SIGNALS} signals/s each of ${PAYLOAD} bytes, pending batches in one ${ACTIVITY_MS} ms local activity after ${promises} nested async calls (${units} activities)`,
        ((SECONDS * 1000 * WORKFLOWS) / Math.max(1, units)).toFixed(1),
        String(Math.round(units / SECONDS)),
        `${percentile(gaps, 50)} / ${percentile(gaps, 90)} / ${gaps[0] ?? "-"}`,
      ]);
    }
    printTable(["case", "ms per activity (per workflow)", "activities/s", "gap end -> next start p50 / p90 / min ms"], rows);
    worker.shutdown();
    await running;
  } finally {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
