/**
 * The servers a chaos run breaks: one Temporal dev server (which a fault may kill and start again
 * on its database file) or a Temporal cluster (`--temporal cluster`: PostgreSQL and four service
 * processes), and one Kafka broker, on free loopback ports in a scratch directory, and `sage` child
 * processes (workers, shims) that log to files there.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { chmodSync, createWriteStream, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { freePort, startDevServer, startScratchServer, type DevServer } from "../../dev/temporal-server.js";
import { startBroker, type Broker } from "../../dev/kafka-broker.js";
import { CLUSTER_SERVICES, TemporalCluster } from "../../dev/temporal-cluster.js";
import { createKafkajsClient } from "../../connectors/kafka/kafkajs-client.js";
import type { KafkaClient } from "../../connectors/kafka/client.js";
import { loadConfig } from "../../client/config-loader.js";
import { SageClient } from "../../client/sage-client.js";
import proto from "@temporalio/proto";

/** A `sage` child process and where its log goes. */
export interface SageChild {
  readonly child: ChildProcess;
  readonly log: string;
  readonly label: string;
}

/** What a fault acts on: the job's servers and its workers. */
export interface StreamRun {
  readonly env: ChaosEnv;
  readonly broker: Broker;
  /** The job's task queue (workers poll it). */
  readonly taskQueue: string;
  /** Workers of the job now, oldest first. */
  readonly workers: SageChild[];
  /** Starts one more `sage worker` (with `extraEnv`) and waits until it polls next to the others. */
  startWorker(label: string, extraEnv?: Record<string, string>): Promise<SageChild>;
  /** Stops a worker (SIGTERM: it finishes its tasks) and forgets it. */
  retireWorker(worker: SageChild): Promise<void>;
}

/** The Temporal a run is against: the dev server, or the cluster of `scripts/temporal-cluster.sh`. */
export type ChaosTemporal = "dev" | "cluster";

/** What every fault run shares. */
export class ChaosEnv {
  private broker: Broker | null = null;
  private kafkaClient: KafkaClient | null = null;
  private children = 0;

  private constructor(
    readonly dir: string,
    private current: DevServer,
    readonly log: (message: string) => void,
    /** The cluster, when the run is against one (then `server` stands for its frontend). */
    readonly cluster: TemporalCluster | null = null,
  ) {}

  /** Starts the dev server or the cluster (the broker starts on first use: the disk fault needs none). */
  static async start(dir: string, log: (message: string) => void, temporal: ChaosTemporal = "dev"): Promise<ChaosEnv> {
    if (temporal === "dev") return new ChaosEnv(dir, await startScratchServer(dir), log);
    chmodSync(dir, 0o755); // PostgreSQL runs as its own user (as root) and must reach its data directory
    const cluster = await TemporalCluster.start(join(dir, "temporal-cluster"));
    log(`Temporal cluster up, frontend ${cluster.address}, state in ${cluster.dir}`);
    return new ChaosEnv(dir, { address: cluster.address, uiUrl: null, pid: null, stop: () => cluster.stop() }, log, cluster);
  }

  /**
   * The workers of one job as a fault sees them (`sage worker <pipelineFile>` children on `taskQueue`,
   * each with `childEnv(extra)`), and every worker ever started, retired ones too, for their logs.
   */
  jobWorkers(
    broker: Broker,
    taskQueue: string,
    pipelineFile: string,
    childEnv: (extra?: Record<string, string>) => Record<string, string>,
  ): { run: StreamRun; everyWorker: SageChild[] } {
    const workers: SageChild[] = [];
    const everyWorker: SageChild[] = [];
    const run: StreamRun = {
      env: this,
      broker,
      taskQueue,
      workers,
      startWorker: async (label, extra = {}) => {
        const w = this.sage(label, ["worker", pipelineFile], childEnv(extra));
        workers.push(w);
        everyWorker.push(w);
        await this.polling(taskQueue, w);
        return w;
      },
      async retireWorker(w) {
        workers.splice(workers.indexOf(w), 1);
        await stopChild(w);
      },
    };
    return { run, everyWorker };
  }

  /** The pids of the Temporal server's processes (every service of a cluster; PostgreSQL is not one). */
  async serverPids(): Promise<number[]> {
    if (this.cluster) return Promise.all(CLUSTER_SERVICES.map((s) => this.cluster!.pid(s)));
    if (this.current.pid === null) throw new Error("the dev server has no pid (the SDK's fallback server): it cannot be killed");
    return [this.current.pid];
  }

  /** The dev server now (a new one after a restart). */
  get server(): DevServer {
    return this.current;
  }

  /** The run's broker, started on first use. */
  async kafka(): Promise<{ broker: Broker; client: KafkaClient }> {
    if (!this.broker) {
      this.log("starting the Kafka broker");
      this.broker = startBroker({ port: await freePort(), controllerPort: await freePort(), dataDir: join(this.dir, "kafka") });
      this.kafkaClient = createKafkajsClient({ brokers: [this.broker.address], clientId: "chaos" });
    }
    return { broker: this.broker, client: this.kafkaClient! };
  }

  /** Starts a dev server again on the same address and database file (a cluster: its services), after a kill -9. */
  async restartServer(): Promise<void> {
    if (this.cluster) return this.cluster.startServices();
    this.current = await startDevServer({
      address: this.current.address,
      uiPort: 0,
      headless: true,
      dbFile: join(this.dir, "temporal.db"),
      logFile: join(this.dir, "temporal.log"),
      startTimeoutMs: 120_000,
    });
  }

  /** A client of the current dev server (connect anew after a restart). */
  async client(): Promise<SageClient> {
    return SageClient.connect({ config: loadConfig({ env: {}, overrides: { "temporal.address": this.current.address } }) });
  }

  /** Starts `sage <args>` with `env` on top of this process's; its stderr goes to a log file in the run's directory. */
  sage(label: string, args: string[], env: Record<string, string>): SageChild {
    const log = join(this.dir, `${++this.children}-${label}.log`);
    const child = spawn(process.execPath, [resolve("bin/sage.js"), ...args], { env: { ...process.env, ...env }, stdio: ["ignore", "ignore", "pipe"] });
    child.stderr?.pipe(createWriteStream(log));
    return { child, log, label };
  }

  /** The last lines of a child's log (for a failure message). */
  tail(c: SageChild, lines = 15): string {
    try {
      return readFileSync(c.log, "utf8").trim().split("\n").slice(-lines).join("\n");
    } catch {
      return "";
    }
  }

  /** Waits until worker `w` polls the workflow task queue (by its identity: another worker's long poll may be older than any freshness window). */
  async polling(taskQueue: string, w: SageChild): Promise<void> {
    const pid = w.child.pid!;
    const client = await this.client();
    try {
      await waitFor(
        `worker ${pid} to poll ${taskQueue}`,
        async () => {
          if (w.child.exitCode !== null) throw new Error(`${w.label} exited with ${w.child.exitCode}: ${this.tail(w, 5)}`);
          const d = await client.connection.workflowService.describeTaskQueue({
            namespace: client.config.temporal.namespace,
            taskQueue: { name: taskQueue },
            taskQueueType: proto.temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
          });
          return (d.pollers ?? []).some((p) => p.identity === `sage-worker@${pid}`) ? true : undefined;
        },
        120_000,
      );
    } finally {
      await client.close();
    }
  }

  /** Stops every node this run started. */
  async stop(): Promise<void> {
    this.broker?.stop();
    await this.current.stop();
  }
}

/** Sends `signal` to a child and waits until it exited (SIGKILL after `graceMs`). */
export async function stopChild(c: SageChild, signal: NodeJS.Signals = "SIGTERM", graceMs = 30_000): Promise<void> {
  const { child } = c;
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, "exit");
  child.kill(signal);
  const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
  await exited;
  clearTimeout(timer);
}

/** Resolves after `ms`. */
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `check` every `everyMs` until it returns a value; throws `what` after `timeoutMs`. */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined> | T | undefined, timeoutMs: number, everyMs = 200): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${Math.round(timeoutMs / 1000)} s`);
    await sleep(everyMs);
  }
}
