/**
 * A stage thread's CPU profile under `node --cpu-prof`. The pool starts its threads without the
 * worker's node flags, and V8 writes a thread's profile only when the thread exits by itself, where
 * the pool terminates them: so no stage thread was ever profiled. With `--cpu-prof` in the worker's
 * node options, the pool hands each thread the profile directory (`--cpu-prof-dir`, else the working
 * directory); the thread profiles itself from its start and writes
 * `stage-thread-<pid>-<threadId>.cpuprofile` there when the pool closes.
 */
import { writeFileSync } from "node:fs";
import { Session, type Profiler } from "node:inspector";
import { join } from "node:path";
import { threadId } from "node:worker_threads";

/** Where `node --cpu-prof` profiles go by these node options; null without `--cpu-prof`. */
export function cpuProfileDir(execArgv: readonly string[]): string | null {
  if (!execArgv.includes("--cpu-prof")) return null;
  const i = execArgv.findIndex((a) => a === "--cpu-prof-dir" || a.startsWith("--cpu-prof-dir="));
  if (i < 0) return ".";
  const arg = execArgv[i]!;
  return arg.includes("=") ? arg.slice(arg.indexOf("=") + 1) : (execArgv[i + 1] ?? ".");
}

/** Starts this thread's profiler when `dir` is set (`cpuProfileDir` of the worker's flags); the returned function writes the profile (a no-op otherwise). */
export function profileThisThread(dir: string | null | undefined): () => Promise<string | null> {
  if (!dir) return async () => null;
  const session = new Session();
  session.connect();
  const post = (method: "Profiler.enable" | "Profiler.start") =>
    new Promise<void>((resolve, reject) => session.post(method, (err) => (err ? reject(err) : resolve())));
  const started = post("Profiler.enable").then(() => post("Profiler.start"));
  return async () => {
    await started;
    const profile = await new Promise<Profiler.Profile>((resolve, reject) =>
      session.post("Profiler.stop", (err, result) => (err ? reject(err) : resolve(result.profile))),
    );
    session.disconnect();
    const file = join(dir, `stage-thread-${process.pid}-${threadId}.cpuprofile`);
    writeFileSync(file, JSON.stringify(profile));
    return file;
  };
}
