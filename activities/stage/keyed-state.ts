/**
 * The keyed state a worker process serves for streaming jobs (after Kafka Streams' state stores):
 * one local copy per (job, keyed operator, partition), made durable by the operator's compacted
 * changelog topic, whose writes join the unit's Kafka transaction. A copy is current when its
 * position (the progress marker of the repartition partition it last committed) equals the marker
 * the unit's session reads; otherwise (a cold worker, another worker served the partition meanwhile,
 * or a commit of ours failed) it is brought up to date before the unit runs: the `memory` backend
 * rebuilds it from the changelog, the `embedded` one recovers its on-disk store (`local-recovery.ts`).
 */
import type { Logger } from "pino";
import type { KafkaSinkHost } from "../../connectors/kafka/sink.js";
import { InMemoryStateBackend, type StateBackend } from "../state/backend.js";
import type { EmbeddedStateBackend } from "../state/embedded-backend.js";
import { entriesOf, LocalRecovery, type KeyedStateOptions } from "./local-recovery.js";

export type { KeyedStateOptions } from "./local-recovery.js";

/** A local copy of one partition's state and the marker it is current at. */
interface LocalState {
  backend: StateBackend;
  position: number;
  /** The same backend when it is an embedded store. */
  embedded?: EmbeddedStateBackend;
}

/** What `open` gives a unit: the state, and how long bringing it up to date took when it was not current. */
export interface OpenedState {
  backend: StateBackend;
  restored?: { entries: number; ms: number };
}

/** Keyed state of the streaming units of one worker process. */
export class KeyedStateHost {
  private readonly local = new Map<string, LocalState>();
  private readonly origins = new Map<string, Promise<string[]>>();
  private readonly recovery: LocalRecovery | null;

  constructor(
    private readonly kafka: () => KafkaSinkHost,
    private readonly logger: Logger,
    options: KeyedStateOptions = { backend: "memory", dir: ".sage/state", localRecovery: true },
  ) {
    this.recovery = options.backend === "embedded" ? new LocalRecovery(() => kafka().client, logger, options) : null;
  }

  /**
   * The state of `changelog` partition `partition`, current at `marker`: the local copy when it is,
   * else brought up to date (then `restored` says how many changelog entries were read, and how long it took).
   */
  async open(changelog: string, partition: number, marker: number): Promise<OpenedState> {
    const id = `${changelog}#${partition}`;
    const held = this.local.get(id);
    if (held && held.position === marker && !held.embedded?.failed) {
      if (held.embedded) await this.recovery!.noteOffset(held.embedded, changelog, partition, marker);
      return { backend: held.backend };
    }
    this.local.delete(id);
    if (this.recovery) {
      const opened = await this.recovery.open(changelog, partition, marker, held?.embedded);
      this.local.set(id, { backend: opened.store, embedded: opened.store, position: marker });
      return { backend: opened.store, ...(opened.restored ? { restored: opened.restored } : {}) };
    }
    const backend = new InMemoryStateBackend();
    if (marker < 0 && !held) {
      this.local.set(id, { backend, position: marker });
      return { backend };
    }
    const started = Date.now();
    const entries = entriesOf(await this.kafka().client.readToEnd(changelog, [partition]));
    backend.restore(entries);
    const ms = Date.now() - started;
    this.logger.info({ changelog, partition, marker, was: held?.position ?? null, entries: entries.length, ms }, "keyed state rebuilt from the changelog");
    this.local.set(id, { backend, position: marker });
    return { backend, restored: { entries: entries.length, ms } };
  }

  /** The unit committed: the copy is current at `position` (an embedded store writes the unit's changes to disk now, with the marker). */
  committed(changelog: string, partition: number, position: number): void {
    const held = this.local.get(`${changelog}#${partition}`);
    if (!held) return;
    held.position = position;
    held.embedded?.persist(position);
  }

  /** Waits for embedded stores' writes and closes them (a later `open` reopens them). */
  async close(): Promise<void> {
    const stores = [...this.local.values()].flatMap((l) => (l.embedded ? [l.embedded] : []));
    this.local.clear();
    await Promise.all(stores.map((s) => s.close()));
  }

  /** Every source partition of `topics` as `topic:partition` (the origins a watermark waits for), cached. */
  originsOf(topics: readonly string[]): Promise<string[]> {
    const key = [...topics].sort().join(",");
    let known = this.origins.get(key);
    if (!known) {
      known = this.kafka()
        .client.admin()
        .then(async (admin) => {
          try {
            const lists = await Promise.all(topics.map(async (t) => (await admin.partitionOffsets(t)).map((p) => `${t}:${p.partition}`)));
            return lists.flat().sort();
          } finally {
            await admin.close();
          }
        });
      known.catch(() => this.origins.delete(key));
      this.origins.set(key, known);
    }
    return known;
  }
}
