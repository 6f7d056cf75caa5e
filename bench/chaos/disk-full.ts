/**
 * The disk-full fault of `bench/chaos.ts`: a bounded job whose data dir (the sink's staging) and
 * output file sit on a small tmpfs, filled beforehand so that the staged shards fit and the
 * commit runs out of space inside its last shard (the worst place: a short write there is the
 * commit's last write). The disk stays full for a while after the first failed commit attempt,
 * then the filler is deleted; the committed file must hold every record once.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { open, rm, statfs } from "node:fs/promises";
import { join } from "node:path";
import type proto from "@temporalio/proto";
import { loadConfig } from "../../client/config-loader.js";
import { SageClient, type StartedJob } from "../../client/sage-client.js";
import { COMMIT_ACTIVITY } from "../../core/plan/job.js";
import { waitForPollers } from "../cluster.js";
import { sleep, stopChild, type ChaosEnv } from "./env.js";
import pipeline, { checked, type ChaosRecord } from "./file-pipeline.js";
import type { FaultResult } from "./stream-run.js";
import { tally } from "./tally.js";

const PAGE = 4096;
const PAD = "y".repeat(120);
const pages = (bytes: number): number => Math.ceil(bytes / PAGE) * PAGE;

/** The input file and what the job's shards will hold, computed from it. */
interface Layout {
  input: string;
  splitBytes: number;
  /** Bytes of each shard (one per split, in split order: the order the commit writes them). */
  shards: number[];
}

/** Writes `n` records and computes each split's output bytes (a line belongs to the split it starts in). */
function layout(dir: string, n: number): Layout {
  const lines: string[] = [];
  const outBytes: number[] = [];
  for (let id = 0; id < n; id++) {
    const r: ChaosRecord = { id, key: `k${id % 101}`, amount: (id * 7) % 1000, payload: PAD };
    lines.push(JSON.stringify(r));
    outBytes.push(JSON.stringify(checked(r)).length + 1);
  }
  const input = join(dir, "chaos-file-in.jsonl");
  writeFileSync(input, lines.join("\n") + "\n");
  const size = lines.reduce((s, l) => s + l.length + 1, 0);
  // Seven and a half splits: the last shard is half a split, big enough to run out of space inside.
  const splitBytes = Math.floor(size / 7.5);
  const shards = Array.from({ length: Math.ceil(size / splitBytes) }, () => 0);
  let offset = 0;
  for (let i = 0; i < n; i++) {
    shards[Math.floor(offset / splitBytes)]! += outBytes[i]!;
    offset += lines[i]!.length + 1;
  }
  return { input, splitBytes, shards };
}

function sh(cmd: string, args: string[]): { ok: boolean; out: string } {
  const r = spawnSync(cmd, args, { encoding: "utf8" });
  return { ok: r.status === 0, out: `${r.stdout ?? ""}${r.stderr ?? ""}`.trim() };
}

/** Fills `dir`'s file system until `leave` bytes are free; the filler's path. */
async function fill(dir: string, leave: number): Promise<string> {
  const s = await statfs(dir);
  const bytes = Math.floor((s.bavail * s.bsize - leave) / PAGE) * PAGE;
  if (bytes < 0) throw new Error(`the tmpfs has ${s.bavail * s.bsize} bytes free, less than the ${leave} the job needs`);
  const path = join(dir, "filler");
  const fh = await open(path, "w");
  const chunk = Buffer.alloc(1 << 20);
  try {
    for (let at = 0; at < bytes;) {
      const { bytesWritten } = await fh.write(chunk, 0, Math.min(chunk.length, bytes - at));
      at += bytesWritten;
    }
  } finally {
    await fh.close();
  }
  return path;
}

/** What the runner saw while the job ran. */
interface Watch {
  firstCommitFailureAt: number | null;
  commitFailure: string | null;
  stageFailure: string | null;
  freedAt: number | null;
  /** Lines of the output file seen while the job had not finished (a commit that is not whole). */
  linesSeenEarly: number | null;
}

/** Watches the job's pending activities; `holdSeconds` after the first failed commit attempt, deletes the filler. */
async function watch(job: StartedJob, filler: string, target: string, holdSeconds: number, finished: () => boolean): Promise<Watch> {
  const w: Watch = { firstCommitFailureAt: null, commitFailure: null, stageFailure: null, freedAt: null, linesSeenEarly: null };
  while (!finished()) {
    const d = await job.describe().catch(() => null);
    for (const a of d?.raw.pendingActivities ?? []) {
      const failure = a.lastFailure?.message ?? null;
      if (!failure) continue;
      if (a.activityType?.name === COMMIT_ACTIVITY) {
        w.firstCommitFailureAt ??= Date.now();
        w.commitFailure ??= failure;
      } else w.stageFailure ??= `${a.activityType?.name}: ${failure}`;
    }
    if (!finished() && existsSync(target)) {
      const lines = readFileSync(target, "utf8").split("\n").length - 1;
      if (!finished()) w.linesSeenEarly = Math.min(w.linesSeenEarly ?? Infinity, lines);
    }
    const since = w.firstCommitFailureAt ?? (w.stageFailure ? Date.now() - holdSeconds * 1000 : null);
    if (since !== null && w.freedAt === null && Date.now() - since >= holdSeconds * 1000) {
      await rm(filler, { force: true });
      w.freedAt = Date.now();
    }
    await sleep(100);
  }
  return w;
}

/** The commit activity's times and attempts, from the job's history. */
function commitTimes(history: proto.temporal.api.history.v1.IHistory): { scheduled: number; completed: number; attempts: number } | null {
  const ms = (e: proto.temporal.api.history.v1.IHistoryEvent) => Number(e.eventTime?.seconds ?? 0) * 1000 + Math.floor((e.eventTime?.nanos ?? 0) / 1e6);
  const events = history.events ?? [];
  const scheduled = events.find((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === COMMIT_ACTIVITY);
  if (!scheduled) return null;
  const id = Number(scheduled.eventId);
  const started = events.find((e) => Number(e.activityTaskStartedEventAttributes?.scheduledEventId ?? -1) === id);
  const completed = events.find((e) => Number(e.activityTaskCompletedEventAttributes?.scheduledEventId ?? -1) === id);
  if (!completed) return null;
  return { scheduled: ms(scheduled), completed: ms(completed), attempts: started?.activityTaskStartedEventAttributes?.attempt ?? 1 };
}

/** Runs the bounded job with the disk of its staging dir full during the commit. */
export async function runDiskFull(env: ChaosEnv, records: number, holdSeconds: number): Promise<FaultResult> {
  const summary = `disk of the staging dir (tmpfs, shared with the output) full during a file sink's commit, freed ${holdSeconds} s after the first failed attempt`;
  const mnt = join(env.dir, "disk");
  mkdirSync(mnt, { recursive: true });
  const plan = layout(env.dir, records);
  const total = plan.shards.reduce((a, b) => a + b, 0);
  const last = plan.shards[plan.shards.length - 1]!;
  const staged = plan.shards.reduce((a, b) => a + pages(b), 0);
  // Free space for the staged shards and the commit's file short of `short` bytes: it runs out in the last shard.
  const short = Math.min(256 * 1024, Math.floor(last / 2));
  const leave = staged + Math.floor((total - short) / PAGE) * PAGE;
  const mount = sh("mount", ["-t", "tmpfs", "-o", `size=${pages(2 * total + (64 << 20))}`, "tmpfs", mnt]);
  if (!mount.ok) throw new Error(`cannot mount a tmpfs for the staging dir (${mount.out}); the disk-full fault needs root and mount`);
  const taskQueue = `chaos-disk-full-${Date.now()}`;
  const target = join(mnt, "out", "records.jsonl");
  const settings = {
    SAGE_TEMPORAL_ADDRESS: env.server.address,
    SAGE_TEMPORAL_TASK_QUEUE: taskQueue,
    SAGE_DATA_DIR: join(mnt, "data"),
    SAGE_EXECUTION_SPLIT_BYTES: String(plan.splitBytes),
    SAGE_LOG_LEVEL: "warn",
    SAGE_MONITORING_ENABLED: "false",
  };
  const problems: string[] = [];
  const worker = env.sage("file-worker", ["worker", "bench/chaos/file-pipeline.ts"], settings);
  const client = await SageClient.connect({ config: loadConfig({ env: settings, overrides: {} }) });
  try {
    const filler = await fill(mnt, leave);
    env.log(`disk-full: ${records} records, ${plan.shards.length} shards, ${total} bytes out; tmpfs left with ${leave} bytes free (commit short by ~${short})`);
    await waitForPollers(client, taskQueue, 1);
    const started = Date.now();
    const job = await client.submit(pipeline, { jobId: taskQueue, params: { input: plan.input, output: target } });
    let finished = false;
    const result = job.result().finally(() => (finished = true));
    const seen = await watch(job, filler, target, holdSeconds, () => finished);
    const outcome = await result.then(
      (r) => ({ ok: true as const, r }),
      (err: unknown) => ({ ok: false as const, err: err as Error }),
    );
    const endAt = Date.now();
    if (!outcome.ok) problems.push(`the job failed: ${outcome.err.message}`);
    if (seen.firstCommitFailureAt === null) problems.push("no commit attempt failed: the disk did not fill during the commit");
    if (seen.stageFailure) problems.push(`a stage failed before the commit (the disk filled too early?): ${seen.stageFailure}`);
    const text = existsSync(target) ? readFileSync(target, "utf8") : "";
    const out = text.split("\n").flatMap((l) => (l ? [(JSON.parse(l) as { id: number }).id] : []));
    const counted = tally(
      Array.from({ length: records }, (_, i) => i),
      out,
    );
    if (seen.linesSeenEarly !== null && seen.linesSeenEarly < records) {
      problems.push(`the output file was visible with ${seen.linesSeenEarly} of ${records} lines before the job finished`);
    }
    const commit = commitTimes(await client.temporal.workflow.getHandle(job.workflowId).fetchHistory());
    const faultAt = seen.firstCommitFailureAt ?? endAt;
    return {
      fault: "disk-full",
      summary,
      ok: problems.length === 0 && counted.lost === 0 && counted.duplicated === 0 && counted.unexpected === 0,
      ...counted,
      // The output of a bounded job appears once, at the commit: its stall is the commit's time from scheduled to done.
      stallSeconds: commit ? (commit.completed - commit.scheduled) / 1000 : NaN,
      gapBeforeSeconds: NaN,
      firstOutputAfterSeconds: commit ? (commit.completed - faultAt) / 1000 : null,
      jobSeconds: (endAt - started) / 1000,
      faultSeconds: ((seen.freedAt ?? endAt) - faultAt) / 1000,
      countedByJob: outcome.ok ? (outcome.r.counts["out"]?.out ?? null) : null,
      details: {
        shards: plan.shards.length,
        outputBytes: total,
        lastShardBytes: last,
        commitShortBytes: short,
        commitAttempts: commit?.attempts ?? null,
        commitFailure: seen.commitFailure,
        outputLinesSeenBeforeTheEnd: seen.linesSeenEarly,
      },
      problems,
    };
  } finally {
    await client.close();
    await stopChild(worker);
    const u = sh("umount", [mnt]);
    if (!u.ok) sh("umount", ["-l", mnt]);
  }
}
