/**
 * A production-shaped Temporal cluster on this machine, for benchmarks and chaos runs: the real
 * server (PostgreSQL persistence, frontend, history, matching and worker as separate processes),
 * driven through `scripts/temporal-cluster.sh`, which owns its set-up. Not used by `sage` itself.
 */
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { ServerUnavailableError } from "../core/errors.js";
import { PACKAGE_ROOT } from "./temporal-server.js";

const run = promisify(execFile);

/** The script that sets the cluster up, starts and stops it. */
export const CLUSTER_SCRIPT = join(PACKAGE_ROOT, "scripts", "temporal-cluster.sh");
/** Where `scripts/install-temporal-server.sh` puts the server binary. */
export const CLUSTER_SERVER_BINARY = join(PACKAGE_ROOT, ".tools", "temporal-server", "server");

/** One of the cluster's Temporal services (each its own process). */
export type ClusterService = "frontend" | "history" | "matching" | "worker";

/** Every service, in the order the script starts them. */
export const CLUSTER_SERVICES: readonly ClusterService[] = ["history", "matching", "frontend", "worker"];

/** A cluster whose state lives in one directory (its database, config, pids and logs). */
export class TemporalCluster {
  private constructor(
    /** The directory of its state (`TEMPORAL_CLUSTER_DIR`). */
    readonly dir: string,
    /** The frontend's `host:port` (what `temporal.address` points at). */
    readonly address: string,
  ) {}

  /** Why no cluster can be started here (no server binary), or null. */
  static unavailable(): string | null {
    return existsSync(CLUSTER_SERVER_BINARY) ? null : `no Temporal server binary at ${CLUSTER_SERVER_BINARY}: run scripts/install-temporal-server.sh`;
  }

  /** Starts (and on first use sets up) the cluster in `dir`; resolves once the frontend serves. */
  static async start(dir: string): Promise<TemporalCluster> {
    const why = TemporalCluster.unavailable();
    if (why) throw new ServerUnavailableError(why);
    const address = (await script(dir, ["start"])).trim().split("\n").pop()!;
    return new TemporalCluster(dir, address);
  }

  /** The pid of a running service. */
  async pid(service: ClusterService): Promise<number> {
    return Number((await script(this.dir, ["pid", service])).trim());
  }

  /** Starts the services that are not running (after a kill), and waits until the frontend serves. */
  async startServices(...services: ClusterService[]): Promise<void> {
    await script(this.dir, ["start", ...services]);
  }

  /** The log file of a service. */
  logOf(service: ClusterService): string {
    return join(this.dir, `${service}.log`);
  }

  /** Stops every service, then PostgreSQL. */
  async stop(): Promise<void> {
    await script(this.dir, ["stop"]);
  }
}

async function script(dir: string, args: string[]): Promise<string> {
  try {
    const { stdout } = await run("bash", [CLUSTER_SCRIPT, ...args], { env: { ...process.env, TEMPORAL_CLUSTER_DIR: dir }, timeout: 600_000 });
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new ServerUnavailableError(`scripts/temporal-cluster.sh ${args.join(" ")}: ${(e.stderr ?? "").trim() || e.message}`, { cause: err });
  }
}
