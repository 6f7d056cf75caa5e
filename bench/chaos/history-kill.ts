/**
 * The fault only a Temporal cluster has (`bench/chaos.ts --temporal cluster`): kill -9 of its
 * history service, the process that owns every workflow's shard and writes its history, under the
 * running job, while frontend, matching, worker and PostgreSQL stay up; then a restart of that one
 * process, which takes the shards back from the database.
 */
import { TemporalCluster } from "../../dev/temporal-cluster.js";
import { sleep, waitFor, type ChaosTemporal } from "./env.js";
import { alive, type FaultSettings } from "./faults.js";
import type { StreamFault, StreamRun } from "./stream-run.js";

/** kill -9 of the history service, `serverDownSeconds` without it, a restart of the process. */
export function historyKill(s: FaultSettings, temporal: ChaosTemporal): StreamFault {
  return {
    name: "history-kill",
    summary: `kill -9 of the cluster's history service, ${s.serverDownSeconds} s down, restart (frontend, matching, worker stay up)`,
    unavailable: () => (temporal === "cluster" ? TemporalCluster.unavailable() : "needs --temporal cluster: the dev server has no separate history service"),
    async inject(run: StreamRun) {
      const cluster = run.env.cluster;
      if (!cluster) throw new Error("history-kill runs against a cluster only");
      const pid = await cluster.pid("history");
      process.kill(pid, "SIGKILL");
      await waitFor("the killed history service to exit", () => (alive(pid) ? undefined : true), 10_000, 20);
      const killedAt = Date.now();
      await sleep(s.serverDownSeconds * 1000);
      const restartAt = Date.now();
      await cluster.startServices("history");
      return {
        killedPid: pid,
        restartedPid: await cluster.pid("history"),
        downSeconds: (restartAt - killedAt) / 1000,
        restartSeconds: (Date.now() - restartAt) / 1000,
      };
    },
  };
}
