/**
 * Coordinator lookups of kafkajs transactional producers, remembered for a while. kafkajs 2.2.4
 * sends a FindCoordinator request before every AddPartitionsToTxn, AddOffsetsToTxn and EndTxn, and
 * one more for the offsets' group: four of a small transaction's nine round trips (measured: a
 * transaction took 17-19 ms instead of 28-34 ms with the lookups remembered, bench/RESULTS.md). A
 * lookup is remembered per Kafka cluster object (one per producer) for `COORDINATOR_TTL_MS`, and
 * only while its broker's connection is up; a failed lookup is not remembered. A coordinator that
 * moved is asked for again at the latest after the TTL, and the sink drops a producer whose
 * transaction failed, lookups with it.
 */
import type { Kafka } from "kafkajs";
import { SageError } from "../../core/errors.js";

/** How long a coordinator lookup is reused. */
export const COORDINATOR_TTL_MS = 5_000;

/** The part of a kafkajs cluster object (internal to kafkajs) this module wraps. */
interface CoordinatorLookup {
  findGroupCoordinator(query: { groupId: string; coordinatorType?: number }): Promise<{ isConnected(): boolean }>;
}

/** The description of kafkajs's private cluster factory on a `Kafka` object (kafkajs 2.2.4, src/index.js). */
const CREATE_CLUSTER = "private:Kafka:createCluster";

/** Error of a kafkajs that no longer has the internal this module relies on. */
export class KafkajsInternalsError extends SageError {
  constructor(what: string) {
    super("KAFKAJS_INTERNALS", `kafkajs internals changed: ${what}; the coordinator cache supports kafkajs 2.2.4`, { scope: "job" });
  }
}

/** Makes every cluster `kafka` creates from now on (each producer's) remember its coordinator lookups. Returns `kafka`. */
export function rememberCoordinators(kafka: Kafka, ttlMs = COORDINATOR_TTL_MS): Kafka {
  const target = kafka as unknown as Record<symbol, unknown>;
  const key = Object.getOwnPropertySymbols(target).find((s) => s.description === CREATE_CLUSTER);
  const create = key === undefined ? undefined : target[key];
  if (key === undefined || typeof create !== "function") throw new KafkajsInternalsError(`no ${CREATE_CLUSTER} on the Kafka object`);
  target[key] = (...args: unknown[]) => {
    const cluster = (create as (...a: unknown[]) => unknown)(...args) as CoordinatorLookup;
    if (typeof cluster.findGroupCoordinator !== "function") throw new KafkajsInternalsError("no findGroupCoordinator on the cluster");
    const find = cluster.findGroupCoordinator.bind(cluster);
    const known = new Map<string, { at: number; broker: ReturnType<CoordinatorLookup["findGroupCoordinator"]> }>();
    cluster.findGroupCoordinator = async (query) => {
      const lookup = `${query.coordinatorType ?? 0}:${query.groupId}`;
      const hit = known.get(lookup);
      if (hit && Date.now() - hit.at < ttlMs) {
        const broker = await hit.broker.catch(() => null);
        if (broker?.isConnected()) return broker;
      }
      const broker = find(query);
      known.set(lookup, { at: Date.now(), broker });
      broker.catch(() => {
        if (known.get(lookup)?.broker === broker) known.delete(lookup);
      });
      return broker;
    };
    return cluster;
  };
  return kafka;
}
