/**
 * Benchmark: the wordcount example over a generated corpus (default 1M lines), run on Temporal with
 * 1 and 2 worker processes, side by side with a plain in-process TypeScript loop doing the same
 * work (the limit). Prints records/s, the ratio to the loop, activities, and history events and
 * bytes per split. `npx tsx bench/wordcount.ts [--lines N]`.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { once } from "node:events";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createServer } from "node:net";
import proto from "@temporalio/proto";
import { readLines } from "../connectors/file/line-reader.js";
import { startDevServer } from "../client/dev-server.js";
import { loadConfig } from "../client/config-loader.js";
import { SageClient } from "../client/sage-client.js";
import pipeline from "../examples/wordcount/pipeline.js";
import { ensureCorpus } from "./corpus.js";
import { machineLine, printTable, saveResult } from "./machine.js";

const argLines = process.argv.indexOf("--lines");
const LINES = argLines > 0 ? Number(process.argv[argLines + 1]) : 1_000_000;

async function freePort(): Promise<number> {
  return new Promise((ok) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address() as { port: number };
      s.close(() => ok(port));
    });
  });
}

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

function startWorkers(n: number, env: Record<string, string>): ChildProcess[] {
  return Array.from({ length: n }, () =>
    spawn(process.execPath, [resolve("bin/sage.js"), "worker", "examples/wordcount/pipeline.ts"], {
      env: { ...process.env, ...env },
      stdio: ["ignore", "ignore", "inherit"],
    }),
  );
}

async function stopWorkers(workers: ChildProcess[]): Promise<void> {
  await Promise.all(
    workers.map(async (w) => {
      if (w.exitCode !== null) return;
      const exited = once(w, "exit");
      w.kill("SIGTERM");
      await exited;
    }),
  );
}

const dir = mkdtempSync(join(tmpdir(), "sage-bench-"));
const input = resolve(".sage", "bench", `wordcount-${LINES}.txt`);
console.log(`machine: ${machineLine()}`);
const bytes = await ensureCorpus(input, LINES);
console.log(`input: ${LINES} lines, ${(bytes / 1024 ** 2).toFixed(1)} MiB (${input})`);

const address = `127.0.0.1:${await freePort()}`;
const server = await startDevServer({
  address,
  uiPort: await freePort(),
  headless: true,
  dbFile: join(dir, "t.db"),
  logFile: join(dir, "t.log"),
  log: () => {},
});
const env = { SAGE_TEMPORAL_ADDRESS: address, SAGE_DATA_DIR: join(dir, "data"), SAGE_LOG_LEVEL: "warn", SAGE_TEMPORAL_TASK_QUEUE: "bench-wordcount" };
const config = loadConfig({ env, overrides: {} });

const loopOut = join(dir, "loop.jsonl");
const loop = await plainLoop(input, loopOut);
type Row = { case: string; ms: number; out: number; activities?: number; splits?: number; events?: number; historyBytes?: number };
const rows: Row[] = [{ case: "plain TS loop (in process, not durable)", ms: loop.ms, out: loop.out }];

for (const workers of [1, 2]) {
  const procs = startWorkers(workers, env);
  const client = await SageClient.connect({ config });
  try {
    await new Promise((r) => setTimeout(r, 3000)); // workers bundle their workflow code (~1-2 s) before polling
    const output = join(dir, `sage-${workers}.jsonl`);
    const t = performance.now();
    const job = await client.submit(pipeline, { jobId: `bench-${workers}w-${Date.now()}`, params: { input, output } });
    const result = await job.result();
    const ms = performance.now() - t;
    const history = await job.handle.fetchHistory();
    const historyBytes = proto.temporal.api.history.v1.History.encode(history).finish().length;
    const same = readFileSync(output).equals(readFileSync(loopOut));
    if (!same) throw new Error(`output of the ${workers}-worker run differs from the plain loop's`);
    rows.push({
      case: `sage, ${workers} worker process${workers > 1 ? "es" : ""} (durable)`,
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
