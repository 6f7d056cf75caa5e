/**
 * Benchmark: the agent-router example (classify, route to three branches, union, one sink) over
 * generated JSON Lines messages (default 20,000), fused and unfused side by side on one fresh dev
 * server. Unfused, every operator is its own activity and every batch crosses workflow history;
 * the table shows what fusion saves per source split. `npx tsx bench/router.ts [--messages N]`.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { mkdir, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { startScratchServer } from "../dev/temporal-server.js";
import { loadConfig } from "../client/config-loader.js";
import { SageClient } from "../client/sage-client.js";
import type { StageCounts } from "../core/plan/job.js";
import pipeline, { type Answer, type Message } from "../examples/agent-router/keyword-pipeline.js";
import { jobHistory, startWorkers, stopWorkers, waitForPollers } from "./cluster.js";
import { machineLine, printTable, saveResult } from "./machine.js";

const argMessages = process.argv.indexOf("--messages");
const MESSAGES = argMessages > 0 ? Number(process.argv[argMessages + 1]) : 20_000;
/** Source splits wanted: enough that per-split figures average over several, few enough to be quick. */
const TARGET_SPLITS = 16;
const PIPELINE_FILE = "examples/agent-router/keyword-pipeline.ts";

const NOUNS = ["deployment", "cluster", "worker", "queue", "index", "model", "pipeline", "report", "build", "cache", "database", "dashboard"];
const VERBS = ["restart", "scale", "inspect", "rebuild", "rotate", "archive", "tune", "export"];
const MOODS = ["fine", "slow", "great", "odd", "stable", "noisy", "busy", "quiet"];
const COMMANDS = ["please ", "run ", "start ", "stop ", "deploy ", "show ", "Please ", "Run "];

/**
 * Deterministic mix of messages: ~40% questions (end in "?"), ~30% commands (start with a command
 * word; one in 16 is an `rm -rf` the safety filter drops), ~30% conversation.
 * Returns how many answers each branch should give (`rm -rf` commands get none).
 */
async function writeMessages(path: string, n: number): Promise<Record<"qa" | "cmd" | "chat" | "unsafe", number>> {
  // mulberry32: a plain LCG's low bits cycle too fast for `% 16`
  let seed = 7;
  const next = () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return (t ^ (t >>> 14)) >>> 0;
  };
  const pick = <T>(xs: readonly T[]): T => xs[next() % xs.length]!;
  const expected = { qa: 0, cmd: 0, chat: 0, unsafe: 0 };
  const lines: string[] = [];
  for (let id = 0; id < n; id++) {
    const kind = next() % 10;
    const k = next() % 1000;
    let text: string;
    if (kind < 4) {
      expected.qa++;
      text = pick([
        `what is the status of ${pick(NOUNS)} ${k}?`,
        `how do I ${pick(VERBS)} the ${pick(NOUNS)}?`,
        `why is ${pick(NOUNS)} ${k} so ${pick(MOODS)} today? `,
      ]);
    } else if (kind < 7) {
      if (next() % 16 === 0) {
        text = `run rm -rf /srv/${pick(NOUNS)}-${k}`;
        expected.unsafe++;
      } else {
        expected.cmd++;
        text = `${pick(COMMANDS)}${pick(NOUNS)} ${k} and ${pick(VERBS)} it`;
      }
    } else {
      expected.chat++;
      text = pick([
        `thanks, the ${pick(NOUNS)} looks ${pick(MOODS)} now`,
        `I think ${pick(NOUNS)} ${k} is ${pick(MOODS)}`,
        `good morning, ${pick(NOUNS)} team!`,
      ]);
    }
    const m: Message = { id, text };
    lines.push(JSON.stringify(m));
  }
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, lines.join("\n") + "\n");
  return expected;
}

/** Answers per branch in sorted output lines. */
function answersByBranch(lines: string[]): Record<string, number> {
  const by: Record<string, number> = {};
  for (const l of lines) {
    const { branch } = JSON.parse(l) as Answer;
    by[branch] = (by[branch] ?? 0) + 1;
  }
  return by;
}

/** Lines of a JSON Lines file, sorted: the multiset of records, whatever order branches wrote them in. */
function sortedLines(path: string): string[] {
  return readFileSync(path, "utf8")
    .split("\n")
    .filter((l) => l.length > 0)
    .sort();
}

/** Counts per operator with keys in a fixed order, for comparison. */
function canonicalCounts(counts: StageCounts): string {
  return JSON.stringify(Object.entries(counts).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

const dir = mkdtempSync(join(tmpdir(), "sage-bench-"));
const input = resolve(".sage", "bench", `router-${MESSAGES}.jsonl`);
console.log(`machine: ${machineLine()}`);
const expected = await writeMessages(input, MESSAGES);
const expectedByBranch = JSON.stringify({ chat: expected.chat, cmd: expected.cmd, qa: expected.qa });
const bytes = (await stat(input)).size;
const splitBytes = Math.ceil(bytes / TARGET_SPLITS);
console.log(
  `input: ${MESSAGES} messages (${expected.qa} questions, ${expected.cmd + expected.unsafe} commands of which ${expected.unsafe} rm -rf, ${expected.chat} conversation), ` +
    `${(bytes / 1024).toFixed(0)} KiB, split-bytes ${splitBytes} (${input})`,
);

const server = await startScratchServer(dir);
const address = server.address;
type Row = { case: string; fusion: boolean; ms: number; out: number; splits: number; activities: number; runs: number; events: number; historyBytes: number };
const rows: Row[] = [];
const outputs: string[][] = [];
const counts: string[] = [];
try {
  for (const fusion of [true, false]) {
    const taskQueue = `bench-router-${fusion ? "fused" : "unfused"}`;
    const env = {
      SAGE_TEMPORAL_ADDRESS: address,
      SAGE_DATA_DIR: join(dir, "data"),
      SAGE_LOG_LEVEL: "warn",
      SAGE_TEMPORAL_TASK_QUEUE: taskQueue,
      SAGE_EXECUTION_FUSION: String(fusion),
      SAGE_EXECUTION_SPLIT_BYTES: String(splitBytes),
    };
    const config = loadConfig({ env, overrides: {} });
    const procs = startWorkers(PIPELINE_FILE, 1, env);
    const client = await SageClient.connect({ config });
    try {
      await waitForPollers(client, taskQueue, 1);
      const output = join(dir, `${taskQueue}.jsonl`);
      const t = performance.now();
      const job = await client.submit(pipeline, { jobId: `${taskQueue}-${Date.now()}`, params: { input, output } });
      const result = await job.result();
      const ms = performance.now() - t;
      const history = await jobHistory(client, job);
      const lines = sortedLines(output);
      const byBranch = JSON.stringify(Object.fromEntries(Object.entries(answersByBranch(lines)).sort()));
      if (byBranch !== expectedByBranch) throw new Error(`${taskQueue}: answers per branch ${byBranch}, expected ${expectedByBranch}`);
      if (result.deadLetters !== 0) throw new Error(`${taskQueue}: ${result.deadLetters} dead letter(s)`);
      outputs.push(lines);
      counts.push(canonicalCounts(result.counts));
      rows.push({
        case: fusion ? "fused (1 stage)" : "unfused (--no-fusion, 9 stages)",
        fusion,
        ms,
        out: lines.length,
        splits: result.splitsTotal,
        activities: result.activities,
        runs: history.runs,
        events: history.events,
        historyBytes: history.bytes,
      });
    } finally {
      await client.close();
      await stopWorkers(procs);
    }
  }
} finally {
  await server.stop();
}

const [fused, unfused] = rows as [Row, Row];
const sameOutput = outputs[0]!.length === outputs[1]!.length && outputs[0]!.every((l, i) => l === outputs[1]![i]);
if (!sameOutput) throw new Error("fused and unfused runs wrote different sets of answers");
if (counts[0] !== counts[1]) throw new Error(`fused and unfused counts differ:\n  fused   ${counts[0]}\n  unfused ${counts[1]}`);
console.log(`outputs: both variants wrote the same ${fused.out} answers (sorted lines equal) with equal counts per operator`);

const perSplit = (r: Row, v: number) => v / r.splits;
printTable(
  ["case", "wall s", "messages/s", "splits", "activities", "activities/split", "runs", "events/split", "history B/split"],
  [
    ...rows.map((r) => [
      r.case,
      (r.ms / 1000).toFixed(2),
      Math.round(MESSAGES / (r.ms / 1000)).toLocaleString("en-US"),
      String(r.splits),
      String(r.activities),
      perSplit(r, r.activities).toFixed(1),
      String(r.runs),
      perSplit(r, r.events).toFixed(1),
      Math.round(perSplit(r, r.historyBytes)).toLocaleString("en-US"),
    ]),
    [
      "ratio fused/unfused",
      `${(fused.ms / unfused.ms).toFixed(2)}x`,
      `${(unfused.ms / fused.ms).toFixed(2)}x`,
      "",
      `${(fused.activities / unfused.activities).toFixed(3)}x`,
      `${(perSplit(fused, fused.activities) / perSplit(unfused, unfused.activities)).toFixed(3)}x`,
      "",
      `${(perSplit(fused, fused.events) / perSplit(unfused, unfused.events)).toFixed(3)}x`,
      `${(perSplit(fused, fused.historyBytes) / perSplit(unfused, unfused.historyBytes)).toFixed(3)}x`,
    ],
  ],
);
console.log("activities include control activities (sage:splits once per run, sage:commit); history sums all runs of a job (continue-as-new)");
const ratio = {
  wallTime: fused.ms / unfused.ms,
  messagesPerSecond: unfused.ms / fused.ms,
  activities: fused.activities / unfused.activities,
  eventsPerSplit: perSplit(fused, fused.events) / perSplit(unfused, unfused.events),
  historyBytesPerSplit: perSplit(fused, fused.historyBytes) / perSplit(unfused, unfused.historyBytes),
};
console.log(`results: ${saveResult("router", { messages: MESSAGES, inputBytes: bytes, splitBytes, expected, sameOutput, rows, ratio })}`);
rmSync(dir, { recursive: true, force: true });
