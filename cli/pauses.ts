/**
 * Logs the long pauses of a process: garbage collections, and stretches in which its event loop
 * ran nothing (a timer came late). A streaming process that stops for half a second delays every
 * batch by as much; with this in the log, such a spike can be told apart from a slow server or broker.
 */
import { PerformanceObserver, constants, type PerformanceEntry } from "node:perf_hooks";
import type { Logger } from "pino";

/** A timer this much late means the event loop was blocked. */
const BLOCKED_MS = 200;
/** Collections at least this long are logged (debug). */
const GC_MS = 20;
const TICK_MS = 100;

const GC_KINDS: Record<number, string> = {
  [constants.NODE_PERFORMANCE_GC_MAJOR]: "major",
  [constants.NODE_PERFORMANCE_GC_MINOR]: "minor",
  [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: "incremental",
  [constants.NODE_PERFORMANCE_GC_WEAKCB]: "weak callbacks",
};

/** Starts watching; the returned function stops it. Neither the timer nor the observer keeps the process alive. */
export function watchPauses(logger: Logger): () => void {
  /** Collection time (ms) since the last tick: a blocked loop with most of it in GC was the collector. */
  let gcSinceTick = 0;
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      gcSinceTick += entry.duration;
      if (entry.duration < GC_MS) continue;
      const kind = (entry as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind;
      logger.debug(
        { gcMs: Math.round(entry.duration), kind: GC_KINDS[kind ?? -1] ?? String(kind), heapUsedMb: Math.round(process.memoryUsage().heapUsed / 2 ** 20) },
        "garbage collection",
      );
    }
  });
  observer.observe({ entryTypes: ["gc"] });
  let last = performance.now();
  const timer = setInterval(() => {
    const now = performance.now();
    const late = now - last - TICK_MS;
    last = now;
    if (late >= BLOCKED_MS) logger.warn({ blockedMs: Math.round(late), gcMs: Math.round(gcSinceTick) }, "event loop blocked");
    gcSinceTick = 0;
  }, TICK_MS);
  timer.unref();
  return () => {
    clearInterval(timer);
    observer.disconnect();
  };
}
