/**
 * Runs the naive baseline on a sample of events: an in-process worker with the SDK's default
 * options, one workflow started per record (at most `concurrency` in flight from the client),
 * timed from the first start to the last result.
 */
import { fileURLToPath } from "node:url";
import { Client, Connection } from "@temporalio/client";
import { DefaultLogger, NativeConnection, Runtime, Worker } from "@temporalio/worker";
import type { ClickEvent } from "../bounded/events.js";
import { naiveActivities } from "./activities.js";
import { naiveRecordWorkflow } from "./workflows.js";

/** What the naive run measured. */
export interface NaiveRun {
  records: number;
  written: number;
  seconds: number;
}

let runtimeReady = false;

/** Runs `events` through the naive design against the server at `address`, writing to `output`. */
export async function runNaive(address: string, events: ClickEvent[], output: string, concurrency = 100): Promise<NaiveRun> {
  if (!runtimeReady) {
    // The worker's own logs would drown the tables; warnings still show.
    Runtime.install({ logger: new DefaultLogger("WARN") });
    runtimeReady = true;
  }
  const taskQueue = `bench-naive-${process.pid}-${Date.now()}`;
  const nativeConnection = await NativeConnection.connect({ address });
  const worker = await Worker.create({
    connection: nativeConnection,
    taskQueue,
    workflowsPath: fileURLToPath(new URL("./workflows.ts", import.meta.url)),
    activities: naiveActivities,
  });
  const connection = await Connection.connect({ address });
  const client = new Client({ connection });
  const running = worker.run();
  try {
    let next = 0;
    let written = 0;
    const t = performance.now();
    await Promise.all(
      Array.from({ length: Math.min(concurrency, events.length) }, async () => {
        while (next < events.length) {
          const e = events[next++]!;
          const ok = await client.workflow.execute(naiveRecordWorkflow, { taskQueue, workflowId: `${taskQueue}-${e.id}`, args: [e, output] });
          if (ok) written++;
        }
      }),
    );
    return { records: events.length, written, seconds: (performance.now() - t) / 1000 };
  } finally {
    worker.shutdown();
    await running;
    await connection.close();
    await nativeConnection.close();
  }
}
