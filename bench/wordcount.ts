/**
 * Benchmark: the wordcount example over a generated corpus (default 1M lines), run on Temporal with
 * 1 and 2 worker processes, side by side with a plain in-process TypeScript loop doing the same
 * work (the limit). Prints records/s, the ratio to the loop, activities, and history events and
 * bytes per split. `npx tsx bench/wordcount.ts [--lines N]`.
 */
import { createWriteStream, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { once } from "node:events";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import proto from "@temporalio/proto";
import { startWorkers, stopWorkers, waitForPollers } from "./cluster.js";
import { readLines } from "../connectors/file/line-reader.js";
import { startScratchServer } from "../dev/temporal-server.js";
import { loadConfig } from "../client/config-loader.js";
import { workerSlotsOf } from "../worker/slots.js";
import { SageClient } from "../client/sage-client.js";
import pipeline from "../examples/wordcount/pipeline.js";
import { ensureCorpus } from "./corpus.js";
import { machineLine, printTable, saveResult } from "./machine.js";

const argLines = process.argv.indexOf("--lines");
const LINES = argLines > 0 ? Number(process.argv[argLines + 1]) : 1_000_000;

/** The same work as the pipeline, in one plain loop: read, split, pair, filter, JSON lines out. */
async function plainLoop(input: string, output: string): Promise<{ ms: number; out: number }> {
  const t = performance.now();
  const sink = createWriteStream(output);
  let out = 0;
  let buf: string[] = [];
  for await (const lines of readLines(input, 0, Number.MAX_SAFE_INTEGER)) {
    for (const line of lines) {
      for (const w of line.text.toLowerCase().split(/\W+/).filter(Boolean)) {
        const p = { word: w, n: 1 };
        if (p.word.length > 2) {
          buf.push(JSON.stringify(p));
          out++;
        }
      }
    }
    if (!sink.write(buf.join("\n") + "\n")) await once(sink, "drain");
    buf = [];
  }
  sink.end();
  await once(sink, "finish");
  return { ms: performance.now() - t, out };
}

const dir = mkdtempSync(join(tmpdir(), "sage-bench-"));
const input = resolve(".sage", "bench", `wordcount-${LINES}.txt`);
console.log(`machine: ${machineLine()}`);
const bytes = await ensureCorpus(input, LINES);
console.log(`input: ${LINES} lines, ${(bytes / 1024 ** 2).toFixed(1)} MiB (${input})`);

const server = await startScratchServer(dir);
const address = server.address;
const env = { SAGE_TEMPORAL_ADDRESS: address, SAGE_DATA_DIR: join(dir, "data"), SAGE_LOG_LEVEL: "warn", SAGE_TEMPORAL_TASK_QUEUE: "bench-wordcount" };
const config = loadConfig({ env, overrides: {} });

const loopOut = join(dir, "loop.jsonl");
const loop = await plainLoop(input, loopOut);
type Row = { case: string; ms: number; out: number; activities?: number; splits?: number; events?: number; historyBytes?: number };
const rows: Row[] = [{ case: "plain TS loop (in process, not durable)", ms: loop.ms, out: loop.out }];

const variants = [
  { workers: 1, slots: workerSlotsOf(config).activities, label: "sage, 1 worker (durable)" },
  { workers: 2, slots: workerSlotsOf(config).activities, label: "sage, 2 workers (durable)" },
  { workers: 2, slots: 1, label: "sage, 2 workers x 1 activity slot" },
];
for (const [i, v] of variants.entries()) {
  const taskQueue = `bench-wordcount-${i}`;
  const procs = startWorkers("examples/wordcount/pipeline.ts", v.workers, {
    ...env,
    SAGE_TEMPORAL_TASK_QUEUE: taskQueue,
    SAGE_WORKER_MAX_CONCURRENT_ACTIVITIES: String(v.slots),
  });
  const client = await SageClient.connect({ config: { ...config, temporal: { ...config.temporal, "task-queue": taskQueue } } });
  const workers = v.workers;
  try {
    await waitForPollers(client, taskQueue, workers);
    const output = join(dir, `sage-${i}.jsonl`);
    const t = performance.now();
    const job = await client.submit(pipeline, { jobId: `bench-${workers}w-${Date.now()}`, params: { input, output } });
    const result = await job.result();
    const ms = performance.now() - t;
    const history = await job.handle.fetchHistory();
    const historyBytes = proto.temporal.api.history.v1.History.encode(history).finish().length;
    const same = readFileSync(output).equals(readFileSync(loopOut));
    if (!same) throw new Error(`output of "${v.label}" differs from the plain loop's`);
    rows.push({
      case: v.label,
      ms,
      out: result.counts.out?.out ?? 0,
      activities: result.activities,
      splits: result.splitsTotal,
      events: history.events?.length ?? 0,
      historyBytes,
    });
  } finally {
    await client.close();
    await stopWorkers(procs);
  }
}
await server.stop();

const base = rows[0]!;
printTable(
  ["case", "wall s", "lines/s", "records out/s", "vs loop", "activities", "splits", "events/split", "history B/split"],
  rows.map((r) => [
    r.case,
    (r.ms / 1000).toFixed(2),
    Math.round(LINES / (r.ms / 1000)).toLocaleString("en-US"),
    Math.round(r.out / (r.ms / 1000)).toLocaleString("en-US"),
    `${(base.ms / r.ms).toFixed(2)}x`,
    r.activities === undefined ? "-" : String(r.activities),
    r.splits === undefined ? "-" : String(r.splits),
    r.events === undefined ? "-" : (r.events / r.splits!).toFixed(1),
    r.historyBytes === undefined ? "-" : Math.round(r.historyBytes / r.splits!).toLocaleString("en-US"),
  ]),
);
console.log(`results: ${saveResult("wordcount", { lines: LINES, inputBytes: bytes, rows })}`);
rmSync(dir, { recursive: true, force: true });
