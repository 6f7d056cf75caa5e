/** Follows a running job: a progress bar on a terminal, periodic log lines elsewhere. */
import { SingleBar, Presets } from "cli-progress";
import type { Logger } from "pino";
import type { JobProgress } from "../core/plan/job.js";
import type { SageJob } from "../client/sage-client.js";

/** Records read so far: the `in` count of the first operator reported (a source). */
function recordsIn(p: JobProgress): number {
  const first = Object.values(p.counts)[0];
  return first ? first.in : 0;
}

/** Shows `job.progress()` (polled) until `done` settles; returns what `done` settles with (the job's result, or its failure). */
export async function follow<T>(job: SageJob, done: Promise<T>, logger: Logger, tty = process.stderr.isTTY === true): Promise<T> {
  let last: JobProgress | null = null;
  const bar = tty
    ? new SingleBar(
        { format: "{bar} {value}/{total} splits | {records} records | {dead} dead letters | {phase}", hideCursor: true, stream: process.stderr },
        Presets.shades_classic,
      )
    : null;
  let started = false;
  let lastLog = 0;
  let settled = false;
  const finished = done.finally(() => {
    settled = true;
  });
  finished.catch(() => undefined);
  while (!settled) {
    try {
      const p = await job.progress();
      last = p;
      const payload = { records: recordsIn(p), dead: p.deadLetters, phase: p.phase };
      if (bar) {
        if (!started && p.splitsTotal > 0) {
          bar.start(p.splitsTotal, p.splitsDone, payload);
          started = true;
        } else if (started) bar.update(p.splitsDone, payload);
      } else if (Date.now() - lastLog > 2000) {
        lastLog = Date.now();
        logger.info({ splitsDone: p.splitsDone, splitsTotal: p.splitsTotal, ...payload }, "progress");
      }
    } catch {
      // The query needs a worker; before one polls, there is simply no progress yet.
    }
    await Promise.race([finished.catch(() => undefined), new Promise((r) => setTimeout(r, 500))]);
  }
  if (bar && started && last) bar.update(last.splitsTotal, { records: recordsIn(last), dead: last.deadLetters, phase: "done" });
  bar?.stop();
  return finished;
}
