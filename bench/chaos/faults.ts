/**
 * The faults `bench/chaos.ts` injects under the running Kafka -> Kafka job: kill -9 of the Temporal
 * dev server and a restart on its database file, a pause of the broker (SIGSTOP) longer than the
 * consumer session timeout, and the job moved onto workers whose wall clocks are minutes off
 * (libfaketime preloaded into the worker process).
 */
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { sleep, waitFor } from "./env.js";
import type { StreamFault, StreamRun } from "./stream-run.js";

/** Settings of the faults (command-line flags of `bench/chaos.ts`). */
export interface FaultSettings {
  /** Seconds the dev server stays dead before its restart. */
  serverDownSeconds: number;
  /** Seconds the broker stays stopped (longer than the session timeout). */
  pauseSeconds: number;
  /** Minutes the skewed workers' clocks are off (one ahead, then one behind). */
  skewMinutes: number;
  /** Seconds the job runs on the worker that is ahead before the one behind takes over. */
  skewPhaseSeconds: number;
}

/** True while process `pid` exists (a zombie counts as gone). */
export function alive(pid: number): boolean {
  try {
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, "utf8"));
  } catch {
    return false;
  }
}

/**
 * kill -9 of the dev server, `downSeconds` with no server, a restart on the same database file; on
 * a cluster, kill -9 of all four services at once (PostgreSQL stays) and their restart.
 */
export function serverKill(s: FaultSettings, cluster = false): StreamFault {
  const what = cluster ? "every service of the Temporal cluster" : "the Temporal dev server";
  return {
    name: "server-kill",
    summary: `kill -9 of ${what}, ${s.serverDownSeconds} s down, restart on its database${cluster ? " (PostgreSQL)" : " file"}`,
    async inject(run: StreamRun) {
      const pids = await run.env.serverPids();
      for (const pid of pids) process.kill(pid, "SIGKILL");
      await waitFor("the killed server to exit", () => (pids.some(alive) ? undefined : true), 10_000, 20);
      const killedAt = Date.now();
      await sleep(s.serverDownSeconds * 1000);
      const restartAt = Date.now();
      await run.env.restartServer();
      return { killedPids: pids, downSeconds: (restartAt - killedAt) / 1000, restartSeconds: (Date.now() - restartAt) / 1000 };
    },
  };
}

/** SIGSTOP of the broker for `pauseSeconds` (longer than the session timeout), then SIGCONT. */
export function brokerPause(s: FaultSettings, sessionTimeoutSeconds: number): StreamFault {
  return {
    name: "broker-pause",
    summary: `SIGSTOP of the broker for ${s.pauseSeconds} s (session timeout ${sessionTimeoutSeconds} s), then SIGCONT`,
    async inject(run: StreamRun) {
      const pid = run.broker.pid();
      if (pid === null) throw new Error("the broker's pid file is missing");
      process.kill(pid, "SIGSTOP");
      const stoppedAt = Date.now();
      try {
        await sleep(s.pauseSeconds * 1000);
      } finally {
        process.kill(pid, "SIGCONT");
      }
      return { brokerPid: pid, pausedSeconds: (Date.now() - stoppedAt) / 1000, sessionTimeoutSeconds };
    },
  };
}

/** Where Debian's `faketime` package puts the multi-threaded libfaketime (a worker has threads). */
const LIBFAKETIME = ["/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1", "/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1"];

function libfaketime(): string | null {
  return LIBFAKETIME.find((p) => existsSync(p)) ?? null;
}

/**
 * The environment of a process whose wall clock is `minutes` off: libfaketime shifts
 * CLOCK_REALTIME (Date.now, and the Rust SDK core's SystemTime) for that process only. Monotonic
 * clocks stay true, as on a machine whose NTP is wrong.
 */
function skewed(minutes: number): Record<string, string> {
  return {
    LD_PRELOAD: libfaketime()!,
    FAKETIME: `${minutes >= 0 ? "+" : ""}${minutes}m`,
    FAKETIME_DONT_FAKE_MONOTONIC: "1",
  };
}

/** How far a process with `env` sees the wall clock from ours (s): proof that the preload works. */
function measuredSkewSeconds(env: Record<string, string>): number {
  const out = spawnSync(process.execPath, ["-e", "process.stdout.write(String(Date.now()))"], { env: { ...process.env, ...env }, encoding: "utf8" });
  return (Number(out.stdout) - Date.now()) / 1000;
}

/** True when libfaketime is mapped into process `pid`. */
function preloaded(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/maps`, "utf8").includes("libfaketime");
  } catch {
    return false;
  }
}

/**
 * The job moves onto a worker whose clock is `skewMinutes` ahead (it starts, the true one stops),
 * runs there for a while, then onto one `skewMinutes` behind: the job's wall clock jumps forward,
 * then back by twice as much.
 */
export function clockSkew(s: FaultSettings): StreamFault {
  return {
    name: "clock-skew",
    summary: `the job moves to a worker ${s.skewMinutes} min ahead, ${s.skewPhaseSeconds} s later to one ${s.skewMinutes} min behind (libfaketime)`,
    unavailable: () => (libfaketime() ? null : `libfaketime is not installed (bash scripts/install-faketime.sh installs Debian's faketime)`),
    async inject(run: StreamRun) {
      const ahead = skewed(s.skewMinutes);
      const behind = skewed(-s.skewMinutes);
      const measured = { ahead: measuredSkewSeconds(ahead), behind: measuredSkewSeconds(behind) };
      const [first] = run.workers;
      const a = await run.startWorker("worker-ahead", ahead);
      if (first) await run.retireWorker(first);
      const aheadAt = Date.now();
      await sleep(s.skewPhaseSeconds * 1000);
      const b = await run.startWorker("worker-behind", behind);
      const loaded = { ahead: preloaded(a.child.pid!), behind: preloaded(b.child.pid!) };
      await run.retireWorker(a);
      return {
        skewMinutes: [s.skewMinutes, -s.skewMinutes],
        measuredSkewSeconds: measured,
        libfaketimeMapped: loaded,
        secondsOnWorkerAhead: (Date.now() - aheadAt) / 1000,
      };
    },
  };
}
