/**
 * Runs test files, each in its own `node --test-reporter=spec` process, in lanes: by default two
 * files at a time share the test run's dev server and broker; then each file that must have them
 * (or the machine's CPU) to itself runs alone. A lane file's output is printed whole when it ends; a
 * file running alone prints as it goes. A file still running after its time limit (`fileLimitS`) is
 * stopped and fails, so that one hang costs minutes, not the whole CI budget. Ends with every file's
 * duration, slowest first, and the failed files. Used by `scripts/run-tests.ts`.
 */
import { spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";

/**
 * CPU seconds (user and system) of this process's children that have ended and been waited for,
 * their own waited-for children included (`cutime`/`cstime` of /proc/self/stat, in 1/100 s); null
 * where /proc is not there. Read at each file's exit, the growth since the last reading is that
 * file's CPU: node waits for one child at a time, as its exit event fires.
 */
function endedChildrenCpu(): number | null {
  try {
    const stat = readFileSync("/proc/self/stat", "utf8");
    // Fields after the command name (which may hold spaces), which ends at the last ")".
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[13]) + Number(fields[14])) / 100;
  } catch {
    return null;
  }
}

/**
 * Why a file runs alone, from what its text calls: `testBroker()` hands out the shared broker to kill
 * and restart (unless the file gets a broker of its own: `ownBroker`); `startCluster()` starts brokers of its own; `rssKb()` measures a process's memory;
 * `startModelServerProcess()` runs the local models, whose CPU-bound answers, slowed by a file beside
 * them, outlast the tests' CLI guards; a file may also say `@runs-alone` in a comment. Null for a
 * file that can share the servers.
 */
export function aloneReason(path: string, ownBroker = false): string | null {
  const text = readFileSync(path, "utf8");
  if (text.includes("testBroker(") && !ownBroker) return "kills and restarts the shared broker";
  if (text.includes("startCluster(")) return "starts a broker cluster of its own";
  if (text.includes(".rssKb(")) return "measures a process's memory";
  if (text.includes("startModelServerProcess(")) return "runs the local models";
  if (text.includes("@runs-alone")) return "marked @runs-alone";
  return null;
}

/** True for a file that kills and restarts the test broker (`testBroker()`): given a broker of its own, it can run in a lane. */
export function killsBroker(path: string): boolean {
  return readFileSync(path, "utf8").includes("testBroker(");
}

/** A broker started for one file: the environment that points the file at it, and how to stop it. */
export interface OwnBroker {
  env: NodeJS.ProcessEnv;
  stop(): void;
  /** The broker's process now (the file may have restarted it: then it is one of the file's), if known. */
  pid?(): number | null;
}

/** How `runInLanes` runs the files. */
export interface LaneOptions {
  /** Files run at a time in the shared phase (1: one after another). */
  lanes: number;
  /** Node options before the file (e.g. `--import tsx`, `--test-name-pattern=...`). */
  nodeArgs: string[];
  env: NodeJS.ProcessEnv;
  /** Where the runner's own lines and the files' output go. */
  write(text: string): void;
  /**
   * Starts a broker for one file that kills its broker (`killsBroker`), which then runs first in the
   * lanes instead of alone; without it such a file runs alone on the shared broker.
   */
  ownBroker?: (file: string) => Promise<OwnBroker>;
  /** Seconds a file may run before it is stopped (SIGTERM, then SIGKILL 10 s later) and counted failed; none when unset. */
  fileLimitS?: number;
}

/**
 * The default of `fileLimitS`: the slowest file takes about 4 minutes on a quiet 2-core machine;
 * a file at 15 has hung (seen in CI: one waited 61 minutes and the run missed its 90).
 */
export const FILE_LIMIT_S = 900;

/** How one file's run ended. */
export interface FileRun {
  file: string;
  ok: boolean;
  /** Wall-clock seconds from spawn to exit. */
  seconds: number;
  /** CPU seconds of the file's process and the processes it waited for (not daemons such as a broker it started); null where unknown. */
  cpuSeconds: number | null;
  /** Set when the file ran alone: why. */
  alone: string | null;
  /** A failed file's last non-log lines (its failures and diagnostics), repeated after the summary. */
  digest: string[];
}

/** Most lines of a failed file's output repeated at the end of the run. */
const DIGEST_LINES = 60;

/** The last `DIGEST_LINES` lines of `output` that are not JSON log lines, each cut to 400 characters. */
export function failureDigest(output: string): string[] {
  const lines = output.split("\n").filter((l) => l.trim() !== "" && !l.startsWith("{"));
  return lines.slice(-DIGEST_LINES).map((l) => (l.length > 400 ? `${l.slice(0, 400)}…` : l));
}

/** Longer tiers first, so the short unit files fill the lanes at the end. */
function tierOf(file: string): number {
  if (/(^|\/)test\/unit\//.test(file)) return 2;
  if (/(^|\/)test\/(workflows|replay)\//.test(file)) return 1;
  return 0;
}

/** The processes of process group `pgid` (from /proc; none where /proc is not there), with their command lines cut to 120 characters. */
function groupMembers(pgid: number): { pid: number; command: string }[] {
  const out: { pid: number; command: string }[] = [];
  let entries: string[] = [];
  try {
    entries = readdirSync("/proc").filter((e) => /^\d+$/.test(e));
  } catch {
    return out;
  }
  for (const e of entries) {
    try {
      const stat = readFileSync(`/proc/${e}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      // fields[0] is the state (Z: a zombie, already dead); fields[2] the process group.
      if (Number(fields[2]) !== pgid || fields[0] === "Z") continue;
      const command = readFileSync(`/proc/${e}/cmdline`, "utf8").split("\0").join(" ").trim();
      out.push({ pid: Number(e), command: command.length > 120 ? `${command.slice(0, 120)}…` : command });
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** The last reading of `endedChildrenCpu`, taken at each file's exit. */
const cpuRead: { last: number | null } = { last: endedChildrenCpu() };

/** Runs one file; `live` streams its output, otherwise it is printed whole at the end. */
async function runFile(
  file: string,
  alone: string | null,
  live: boolean,
  o: LaneOptions,
  running: Map<string, () => void>,
  env = o.env,
  broker: OwnBroker | null = null,
): Promise<FileRun> {
  const start = Date.now();
  const killsSharedBroker = env === o.env && killsBroker(file);
  o.write(`▶ ${file}${alone ? ` (alone: ${alone})` : ""}${env === o.env ? "" : " (a broker of its own)"}\n`);
  // Its own process group: stopping it stops the workers and shims it started too.
  const child = spawn(process.execPath, [...o.nodeArgs, file], { env, stdio: ["ignore", "pipe", "pipe"], detached: true });
  let buffered = "";
  // The whole output, kept for the failure digest (a live file's output is long gone from view by the end).
  let all = "";
  const take = (d: Buffer): void => {
    all += d.toString();
    if (live) o.write(d.toString());
    else buffered += d.toString();
  };
  child.stdout.on("data", take);
  child.stderr.on("data", take);
  const flush = (): void => {
    if (buffered) o.write(buffered.endsWith("\n") ? buffered : `${buffered}\n`);
    buffered = "";
  };
  const signalGroup = (signal: NodeJS.Signals): void => {
    try {
      process.kill(-child.pid!, signal);
    } catch {
      // the group is gone
    }
  };
  const stop = (): void => {
    signalGroup("SIGTERM");
    // A file whose cleanup hangs too is killed outright, with what it started.
    setTimeout(() => signalGroup("SIGKILL"), 10_000).unref();
  };
  running.set(file, () => {
    flush();
    stop();
  });
  let overdue = false;
  const limit = o.fileLimitS
    ? setTimeout(() => {
        overdue = true;
        o.write(`✖ ${file}: still running after its limit of ${o.fileLimitS} s: stopping it\n`);
        stop();
      }, o.fileLimitS * 1000)
    : undefined;
  // Output may still be in the pipes at exit; a process the file left behind may hold them open for good.
  const closed = new Promise<void>((r) => child.once("close", () => r()));
  const exited = new Promise<[number | null, NodeJS.Signals | null]>((r) => child.once("exit", (code, signal) => r([code, signal])));
  const [code, signal] = await exited;
  // What the file started and left running (a worker of a failed test, say) would poll the shared
  // servers for the rest of the run: named, then killed with its group.
  // Not for a file that restarts the shared broker: the broker it started must outlive it.
  // Its own broker, restarted by the file, is one of them but no leftover: it goes after the file anyway.
  const members = killsSharedBroker ? [] : groupMembers(child.pid!);
  const ownPid = broker?.pid?.() ?? null;
  const left = members.filter((p) => p.pid !== ownPid);
  if (left.length > 0) o.write(`⚠ ${file} left ${left.length} process(es) running, now killed: ${left.map((p) => `${p.pid} ${p.command}`).join("; ")}\n`);
  if (members.length > 0) signalGroup("SIGKILL");
  const cpuNow = endedChildrenCpu();
  const cpuSeconds = cpuNow === null || cpuRead.last === null ? null : cpuNow - cpuRead.last;
  cpuRead.last = cpuNow;
  clearTimeout(limit);
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([closed, new Promise<void>((r) => (timer = setTimeout(r, 5_000)))]);
  clearTimeout(timer);
  child.stdout.destroy();
  child.stderr.destroy();
  running.delete(file);
  const seconds = (Date.now() - start) / 1000;
  const ok = code === 0 && signal === null && !overdue;
  if (!live) o.write(`── ${file}\n`);
  flush();
  const how = overdue ? `timed out after ${o.fileLimitS} s` : `failed (${signal ?? `exit ${code}`})`;
  o.write(`${ok ? "✔" : "✖"} ${file}: ${ok ? "passed" : how} in ${seconds.toFixed(1)} s\n\n`);
  return { file, ok, seconds, cpuSeconds, alone, digest: ok ? [] : [...failureDigest(all), ...(overdue ? [`(stopped: ${how})`] : [])] };
}

/** The runs' durations, slowest first, and the failed files. */
function summary(runs: FileRun[], seconds: number): string {
  const cpu = runs.reduce((sum, r) => sum + (r.cpuSeconds ?? 0), 0);
  const lines = [
    `${runs.length} test files in ${seconds.toFixed(0)} s, using ${cpu.toFixed(0)} s of CPU (servers not counted); each file's wall-clock and CPU time, slowest first:`,
  ];
  for (const r of [...runs].sort((a, b) => b.seconds - a.seconds)) {
    const cpuText = r.cpuSeconds === null ? "" : `${r.cpuSeconds.toFixed(1).padStart(7)} s CPU`;
    lines.push(`  ${r.seconds.toFixed(1).padStart(7)} s ${cpuText}  ${r.ok ? "" : "FAILED  "}${r.file}${r.alone ? "  (alone)" : ""}`);
  }
  const failed = runs.filter((r) => !r.ok);
  // Each failure's own lines again, last, where a reader of only the run's tail still sees them.
  for (const r of failed) lines.push(`── why ${r.file} failed (its last ${r.digest.length} lines that are not JSON logs):`, ...r.digest.map((l) => `  | ${l}`));
  lines.push(failed.length === 0 ? "every file passed" : `failed files:\n${failed.map((r) => `  ${r.file}`).join("\n")}`);
  return `${lines.join("\n")}\n`;
}

/** Runs `files` (lane files first, then each alone file by itself) and resolves to the exit code. */
export async function runInLanes(files: string[], o: LaneOptions): Promise<number> {
  const start = Date.now();
  // What ended before (the servers' start scripts) is not a file's.
  cpuRead.last = endedChildrenCpu();
  const lanes = Math.max(1, Math.min(o.lanes, files.length));
  // With lanes and brokers to hand out, a file that kills its broker gets one and runs in a lane.
  const ownBroker = lanes > 1 && o.ownBroker ? o.ownBroker : null;
  const owning = new Set(ownBroker ? files.filter(killsBroker) : []);
  const reasons = new Map(files.map((f) => [f, aloneReason(f, owning.has(f))] as const));
  // The broker killers first (they are long and mostly wait), then by tier: the short unit files fill the lanes at the end.
  const rank = (f: string): number => (owning.has(f) ? -1 : tierOf(f));
  const shared = files.filter((f) => reasons.get(f) === null).sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
  const alone = files.filter((f) => reasons.get(f) !== null);
  const running = new Map<string, () => void>();
  const runs: FileRun[] = [];
  let interrupted = false;
  const interrupt = (signal: NodeJS.Signals): void => {
    interrupted = true;
    o.write(`\n${signal}: stopping ${[...running.keys()].join(", ") || "nothing"}\n`);
    for (const stop of running.values()) stop();
  };
  process.once("SIGINT", interrupt);
  process.once("SIGTERM", interrupt);
  // A lane file prints only when it ends: say now and then what still runs, in case one hangs.
  const heartbeat = setInterval(() => {
    if (running.size > 0) o.write(`… still running after ${((Date.now() - start) / 60_000).toFixed(0)} min: ${[...running.keys()].join(", ")}\n`);
  }, 300_000);
  try {
    const live = lanes === 1;
    const queue = [...shared];
    const runShared = async (f: string): Promise<FileRun> => {
      if (!ownBroker || !owning.has(f)) return runFile(f, null, live, o, running);
      let broker: OwnBroker;
      try {
        broker = await ownBroker(f);
      } catch (err) {
        o.write(`✖ ${f}: its broker did not start: ${String(err)}\n`);
        return { file: f, ok: false, seconds: 0, cpuSeconds: null, alone: null, digest: [`its broker did not start: ${String(err)}`] };
      }
      try {
        return await runFile(f, null, live, o, running, { ...o.env, ...broker.env }, broker);
      } finally {
        broker.stop();
      }
    };
    await Promise.all(
      Array.from({ length: Math.min(lanes, Math.max(1, shared.length)) }, async () => {
        for (let f = queue.shift(); f !== undefined && !interrupted; f = queue.shift()) runs.push(await runShared(f));
      }),
    );
    for (const f of alone) {
      if (interrupted) break;
      runs.push(await runFile(f, reasons.get(f)!, true, o, running));
    }
  } finally {
    clearInterval(heartbeat);
    process.off("SIGINT", interrupt);
    process.off("SIGTERM", interrupt);
  }
  o.write(summary(runs, (Date.now() - start) / 1000));
  return interrupted || runs.length < files.length || runs.some((r) => !r.ok) ? 1 : 0;
}
