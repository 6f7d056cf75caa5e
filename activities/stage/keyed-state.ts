/**
 * The keyed state a worker process serves for streaming jobs (after Kafka Streams' state stores):
 * one local copy per (job, keyed operator, partition), made durable by the operator's compacted
 * changelog topic, whose writes join the unit's Kafka transaction. A copy is current when its
 * position (the progress marker of the repartition partition it last committed) equals the marker
 * the unit's session reads; otherwise (a cold worker, another worker served the partition meanwhile,
 * or a commit of ours failed) it is rebuilt from the changelog before the unit runs.
 */
import type { Logger } from "pino";
import type { KafkaSinkHost } from "../../connectors/kafka/sink.js";
import { InMemoryStateBackend, type StateBackend } from "../state/backend.js";
import type { ChangelogEntry } from "../state/keyed-operator.js";

/** A local copy of one partition's state and the marker it is current at. */
interface LocalState {
  backend: StateBackend;
  position: number;
}

/** Keyed state of the streaming units of one worker process. */
export class KeyedStateHost {
  private readonly local = new Map<string, LocalState>();
  private readonly origins = new Map<string, Promise<string[]>>();

  constructor(
    private readonly kafka: () => KafkaSinkHost,
    private readonly logger: Logger,
  ) {}

  /**
   * The state of `changelog` partition `partition`, current at `marker`: the local copy when it is,
   * else rebuilt from the changelog (then `restored` says how many entries were read, and how long it took).
   */
  async open(changelog: string, partition: number, marker: number): Promise<{ backend: StateBackend; restored?: { entries: number; ms: number } }> {
    const id = `${changelog}#${partition}`;
    const held = this.local.get(id);
    if (held && held.position === marker) return { backend: held.backend };
    this.local.delete(id);
    const backend = new InMemoryStateBackend();
    if (marker < 0 && !held) {
      this.local.set(id, { backend, position: marker });
      return { backend };
    }
    const started = Date.now();
    const messages = await this.kafka().client.readToEnd(changelog, [partition]);
    const entries: ChangelogEntry[] = messages
      .filter((m) => m.key !== null)
      .map((m) => ({ key: m.key!.toString("utf8"), value: m.value === null ? null : m.value.toString("utf8") }));
    backend.restore(entries);
    const ms = Date.now() - started;
    this.logger.info({ changelog, partition, marker, was: held?.position ?? null, entries: entries.length, ms }, "keyed state rebuilt from the changelog");
    this.local.set(id, { backend, position: marker });
    return { backend, restored: { entries: entries.length, ms } };
  }

  /** The unit committed: the copy is current at `position`. */
  committed(changelog: string, partition: number, position: number): void {
    const held = this.local.get(`${changelog}#${partition}`);
    if (held) held.position = position;
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
