/**
 * CPU time of processes and their descendants, from /proc (Linux): used to say whether the Temporal
 * server or the workers are the bottleneck of a run. Elsewhere it reports null.
 */
import { readdirSync, readFileSync } from "node:fs";

/** Clock ticks per second of /proc/<pid>/stat times (USER_HZ; 100 on Linux). */
const TICKS = 100;

/** The parent and the CPU ticks of a /proc stat file (`/proc/<pid>/stat` or a thread's `/proc/<pid>/task/<tid>/stat`). */
function statOf(pid: number, path = `/proc/${pid}/stat`): { ppid: number; ticks: number } | null {
  try {
    const text = readFileSync(path, "utf8");
    // The command name (field 2) may hold spaces: fields after it start past the last ")".
    const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
    return { ppid: Number(fields[1]), ticks: Number(fields[11]) + Number(fields[12]) };
  } catch {
    return null;
  }
}

/** CPU seconds used so far by `pids` and every process below them; null where /proc is missing. */
export function cpuSeconds(pids: Array<number | null | undefined>): number | null {
  let entries: string[];
  try {
    entries = readdirSync("/proc").filter((e) => /^\d+$/.test(e));
  } catch {
    return null;
  }
  const children = new Map<number, number[]>();
  const ticks = new Map<number, number>();
  for (const e of entries) {
    const s = statOf(Number(e));
    if (!s) continue;
    ticks.set(Number(e), s.ticks);
    children.set(s.ppid, [...(children.get(s.ppid) ?? []), Number(e)]);
  }
  let total = 0;
  const seen = new Set<number>();
  const stack = pids.filter((p): p is number => typeof p === "number");
  while (stack.length > 0) {
    const pid = stack.pop()!;
    if (seen.has(pid)) continue;
    seen.add(pid);
    total += ticks.get(pid) ?? 0;
    stack.push(...(children.get(pid) ?? []));
  }
  return total / TICKS;
}

/** CPU seconds used so far by thread `tid` of process `pid` (its main thread: `tid` = `pid`); null where /proc is missing. */
export function threadCpuSeconds(pid: number, tid: number = pid): number | null {
  const s = statOf(pid, `/proc/${pid}/task/${tid}/stat`);
  return s ? s.ticks / TICKS : null;
}

/** CPU seconds the whole machine has been busy (all cores, all processes) since boot; null without /proc/stat. */
export function machineBusySeconds(): number | null {
  try {
    const fields = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
    const total = fields.reduce((a, b) => a + b, 0);
    const idle = (fields[3] ?? 0) + (fields[4] ?? 0);
    return (total - idle) / TICKS;
  } catch {
    return null;
  }
}
