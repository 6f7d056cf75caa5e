/**
 * A streaming bench's `sage worker` and `sage shim` processes, run as deployed: each a child
 * process with its stderr (its JSON log) in a file, stopped with SIGTERM; waits on a job's progress
 * that fail when one of them exits first. Also the bytes a job's topics take on the broker's disk.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream, readdirSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import type { KafkaClient } from "../connectors/kafka/client.js";
import type { StreamJobHandle, StreamJobProgress } from "../streaming/stream-job.js";

/** A `sage` child process with its log in a file. */
export interface SageProcess {
  child: ChildProcess;
  pid: number;
  startedAt: number;
  logFile: string;
  exited: Promise<number | null>;
  /** SIGTERM (the worker finishes what it runs), SIGKILL after 30 s. */
  stop(): Promise<void>;
}

/** `SAGE_BENCH_PROFILE_DIR=<dir>`: the processes write V8 CPU profiles there (`node --cpu-prof`), as in `bench/sage-job.ts`. */
export function profileArgs(): string[] {
  const dir = process.env.SAGE_BENCH_PROFILE_DIR;
  return dir ? ["--cpu-prof", `--cpu-prof-dir=${dir}`] : [];
}

/** Starts `sage <args>` with `env` on top of this process's; its stderr goes to `logFile`. */
export function startSage(args: string[], env: Record<string, string>, logFile: string): SageProcess {
  const startedAt = Date.now();
  const child = spawn(process.execPath, [...profileArgs(), resolve("bin/sage.js"), ...args], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "ignore", "pipe"],
  });
  child.stderr.pipe(createWriteStream(logFile));
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  return {
    child,
    pid: child.pid!,
    startedAt,
    logFile,
    exited,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGTERM");
      const killer = setTimeout(() => child.kill("SIGKILL"), 30_000);
      await exited;
      clearTimeout(killer);
    },
  };
}

/**
 * Resolves at the first line of `p`'s JSON log whose message is `message` (the process must log at
 * a level that shows it); rejects if `p` exits first. It sees only what is logged after the call:
 * call it before the process can log the line (for two lines, call it for both at once).
 */
export function whenLogged(p: SageProcess, message: string): Promise<void> {
  let text = "";
  return new Promise<void>((done, fail) => {
    const onData = (d: Buffer): void => {
      if (text.length < 1e6) text += d.toString();
      if (!text.includes(`"msg":"${message}"`)) return;
      // Seen: stop reading (the log goes on being written to its file by the pipe).
      p.child.stderr?.off("data", onData);
      text = "";
      done();
    };
    p.child.stderr?.on("data", onData);
    void p.exited.then((code) => fail(new Error(`sage process ${p.pid} exited (${code}) before logging "${message}"; see ${p.logFile}`)));
  });
}

/** Rejects when a process exits first, or after `ms`. */
export function guard(what: string, procs: SageProcess[], ms: number, detail: () => string): Promise<never> {
  return Promise.race([
    ...procs.map((p) => p.exited.then((code) => Promise.reject(new Error(`${what}: sage process ${p.pid} exited (${code}); ${detail()}; see ${p.logFile}`)))),
    new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${what}: not done within ${ms} ms; ${detail()}`)), ms).unref()),
  ]);
}

/** Waits until `ready` says yes about the job's progress (polled every `pollMs`, 500 by default); fails when a process exits first, or after `ms` (default 5 min). */
export async function untilProgress(
  job: StreamJobHandle,
  what: string,
  procs: SageProcess[],
  ready: (p: StreamJobProgress) => boolean,
  ms = 300_000,
  /** Between queries: a timed case's end is seen up to this late (plus the query's own time). */
  pollMs = 500,
): Promise<StreamJobProgress> {
  let last: StreamJobProgress | null = null;
  const poll = async (): Promise<StreamJobProgress> => {
    for (;;) {
      last = await job.progress().catch(() => last);
      if (last && ready(last)) return last;
      await new Promise((r) => setTimeout(r, pollMs));
    }
  };
  return Promise.race([poll(), guard(what, procs, ms, () => JSON.stringify(last?.counts ?? {}))]);
}

/** Sizes of topics on the broker's disk. */
export interface TopicBytes {
  bytes: number;
  /** Offsets used (records and transaction markers). */
  offsets: number;
}

/** Bytes of `named` topics' log segments on the broker's disk (those that exist), and the offsets they use. */
export async function topicBytes(kafka: KafkaClient, brokerDataDir: string, named: string[]): Promise<TopicBytes> {
  const logs = join(brokerDataDir, "logs");
  const dirs = readdirSync(logs);
  // Only the topics the job made: behind a source-partitioned keyBy there are no repartition topics.
  const topics = named.filter((t) => dirs.some((dir) => dir.startsWith(`${t}-`)));
  let bytes = 0;
  for (const dir of dirs) {
    if (!topics.some((t) => dir.startsWith(`${t}-`) && /^\d+$/.test(dir.slice(t.length + 1)))) continue;
    for (const f of readdirSync(join(logs, dir))) if (f.endsWith(".log")) bytes += statSync(join(logs, dir, f)).size;
  }
  const admin = await kafka.admin();
  try {
    let offsets = 0;
    for (const t of topics) for (const p of await admin.partitionOffsets(t)) offsets += Number(p.high) - Number(p.low);
    return { bytes, offsets };
  } finally {
    await admin.close();
  }
}
