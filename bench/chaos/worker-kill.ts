/**
 * The worker fault of the keyed chaos run: kill -9 of the job's only worker while windows are open,
 * a few seconds with no worker, then a fresh worker process with no local state, which must bring
 * every keyed operator's state back from its changelog at the last checkpoint.
 */
import { once } from "node:events";
import { sleep } from "./env.js";
import type { StreamFault, StreamRun } from "./stream-run.js";

/** kill -9 of every worker of the job, `downSeconds` with none, then one fresh worker. */
export function workerKill(downSeconds: number): StreamFault {
  return {
    name: "worker-kill",
    summary: `kill -9 of the worker mid-window, ${downSeconds} s with no worker, a fresh worker restores state from the changelog`,
    async inject(run: StreamRun) {
      const killed = [...run.workers];
      for (const w of killed) {
        const exited = w.child.exitCode === null && w.child.signalCode === null ? once(w.child, "exit") : Promise.resolve();
        w.child.kill("SIGKILL");
        await exited;
        run.workers.splice(run.workers.indexOf(w), 1);
      }
      const killedAt = Date.now();
      await sleep(downSeconds * 1000);
      const fresh = await run.startWorker("worker-fresh");
      return { killedPids: killed.map((w) => w.child.pid), downSeconds, freshPid: fresh.child.pid, polledAfterKillSeconds: (Date.now() - killedAt) / 1000 };
    },
  };
}
