/**
 * Local recovery of the `embedded` backend's stores (after Flink's local recovery and Kafka Streams'
 * state directory): a store keeps, with its data, the marker it is current at and a changelog
 * offset from which replaying brings it to any later marker. A worker that opens a store left on
 * its disk serves it at once when its marker is the committed one; replays only the changelog's
 * tail when it is behind; and otherwise (no store, a store ahead of the changelog or of unknown
 * standing, a tail no longer readable) wipes it and rebuilds it from the whole changelog. Each is
 * logged with how long it took.
 */
import { readdirSync } from "node:fs";
import { join } from "node:path";
import type { Logger } from "pino";
import type { ConsumedMessage, KafkaClient } from "../../connectors/kafka/client.js";
import { DiskStore, StoreBusyError } from "../state/disk-store.js";
import { EmbeddedStateBackend } from "../state/embedded-backend.js";
import type { ChangelogEntry } from "../state/keyed-operator.js";

/** How a worker keeps keyed state (the `state` config section). */
export interface KeyedStateOptions {
  /** `memory`: a map per partition; `embedded`: an on-disk store per partition. */
  backend: "memory" | "embedded";
  /** Where embedded stores live: `<dir>/<changelog topic>/<partition>`. */
  dir: string;
  /** Reopen a store an earlier process left on disk (else wipe it and rebuild it from the changelog). */
  localRecovery: boolean;
}

/** How often a store that is served learns the changelog offset it is current at (one admin request). */
const OFFSET_NOTE_MS = 30_000;

/** Changelog records as entries (the key is the entry key; a null value deletes). */
export function entriesOf(messages: readonly ConsumedMessage[]): ChangelogEntry[] {
  return messages.filter((m) => m.key !== null).map((m) => ({ key: m.key!.toString("utf8"), value: m.value === null ? null : m.value.toString("utf8") }));
}

/** Opens embedded stores and brings them up to the committed marker. */
export class LocalRecovery {
  /** When each store last learnt its changelog offset. */
  private readonly noted = new WeakMap<EmbeddedStateBackend, number>();
  /** Store directories opened by this process (without local recovery, only the first open wipes). */
  private readonly opened = new Set<string>();

  constructor(
    private readonly kafka: () => KafkaClient,
    private readonly logger: Logger,
    private readonly options: KeyedStateOptions,
  ) {}

  /**
   * The store of `changelog` partition `partition`, current at `marker`: `held` (a store this
   * process has open, not current) or the one on disk, recovered; `restored` when changelog
   * entries were read.
   */
  async open(
    changelog: string,
    partition: number,
    marker: number,
    held?: EmbeddedStateBackend,
  ): Promise<{ store: EmbeddedStateBackend; restored?: { entries: number; ms: number } }> {
    const started = Date.now();
    const store = held ?? (await this.openStore(changelog, partition));
    await store.flushed();
    const log = { changelog, partition, marker, stored: store.stored?.marker ?? null };
    if (store.failed || store.unpersisted) {
      this.logger.warn({ ...log, err: store.failed }, "keyed state store: a write to disk failed or was cut short; rebuilding it");
      await store.wipe();
    }
    const stored = store.stored;
    if (marker < 0) {
      // Nothing committed yet: whatever a store holds is not this job's state.
      if (stored !== null || !store.empty) await store.wipe();
      return { store };
    }
    if (stored?.marker === marker) {
      this.logger.info({ ...log, recovery: "current", ms: Date.now() - started }, "keyed state recovered locally: the store on disk is current");
      this.noted.set(store, Date.now());
      return { store };
    }
    if (stored !== null && stored.marker < marker) {
      const tail = await this.replayTail(store, changelog, partition, marker, stored.offset);
      if (tail !== null) {
        const ms = Date.now() - started;
        this.logger.info({ ...log, recovery: "tail", from: stored.offset, entries: tail, ms }, "keyed state recovered locally: the changelog's tail replayed");
        return { store, restored: { entries: tail, ms } };
      }
    }
    const reason = stored === null ? "no store" : stored.marker > marker ? "the store is ahead of the changelog" : "the changelog's tail is gone";
    const entries = await this.rebuild(store, changelog, partition, marker);
    const ms = Date.now() - started;
    this.logger.info({ ...log, recovery: "rebuilt", reason, entries, ms }, "keyed state rebuilt from the changelog");
    return { store, restored: { entries, ms } };
  }

  /** Every so often, notes the changelog's end offset as the one a current store is current at (replays after a restart start there). */
  async noteOffset(store: EmbeddedStateBackend, changelog: string, partition: number, marker: number): Promise<void> {
    const now = Date.now();
    if (now - (this.noted.get(store) ?? 0) < OFFSET_NOTE_MS) return;
    this.noted.set(store, now);
    try {
      const end = await this.endOffsets(changelog, partition);
      // This unit's session fenced every earlier writer of the partition: the end is where the marker's data ends.
      if (end) store.noteOffset(marker, end.high);
    } catch (err) {
      this.logger.warn({ changelog, partition, err }, "keyed state store: could not read the changelog's end offset (a later replay starts earlier)");
    }
  }

  /** Opens the store directory of a partition; one another live process holds gives way to a private, fresh one. */
  private async openStore(changelog: string, partition: number): Promise<EmbeddedStateBackend> {
    const dir = join(this.options.dir, changelog, String(partition));
    let store: EmbeddedStateBackend;
    try {
      store = EmbeddedStateBackend.open(dir);
    } catch (err) {
      if (!(err instanceof StoreBusyError)) {
        // A store lmdb cannot open (damaged, or of an incompatible version) is only a cache of the changelog.
        this.logger.warn({ dir, err }, "keyed state store cannot be opened: removing it (rebuilt from the changelog)");
        DiskStore.remove(dir);
        this.opened.add(dir);
        return EmbeddedStateBackend.open(dir);
      }
      const own = `${dir}.pid-${process.pid}`;
      this.logger.warn(
        { dir, holder: err.pid, own },
        "keyed state store held by another live process (give each worker its own state.dir): using a private one, rebuilt",
      );
      this.removeDeadPrivateStores(dir);
      DiskStore.remove(own);
      return EmbeddedStateBackend.open(own);
    }
    if (!this.options.localRecovery && !this.opened.has(dir)) await store.wipe();
    this.opened.add(dir);
    return store;
  }

  /** Removes private store directories (`<partition>.pid-<pid>`) of processes that are gone. */
  private removeDeadPrivateStores(dir: string): void {
    const parent = join(dir, "..");
    const prefix = `${dir.slice(parent.length + 1)}.pid-`;
    for (const name of readdirSync(parent)) {
      if (!name.startsWith(prefix)) continue;
      const pid = Number(name.slice(prefix.length));
      let gone = false;
      try {
        process.kill(pid, 0);
      } catch (err) {
        gone = (err as NodeJS.ErrnoException).code === "ESRCH";
      }
      if (gone) DiskStore.remove(join(parent, name));
    }
  }

  /** Replays the changelog from `from` into the store; null when that offset is not in the partition (compacted away, or a recreated topic). */
  private async replayTail(store: EmbeddedStateBackend, changelog: string, partition: number, marker: number, from: number): Promise<number | null> {
    const end = await this.endOffsets(changelog, partition);
    if (!end || end.low > from || end.high < from) return null;
    const messages = await this.kafka().readToEnd(changelog, [partition], new Map([[partition, from]]));
    store.restore(entriesOf(messages));
    // The end read before the replay: at or before where the marker's data ends.
    store.setMark(marker, end.high);
    this.noted.set(store, Date.now());
    return messages.length;
  }

  /** Wipes the store and restores the whole changelog partition into it. */
  private async rebuild(store: EmbeddedStateBackend, changelog: string, partition: number, marker: number): Promise<number> {
    await store.wipe();
    const messages = await this.kafka().readToEnd(changelog, [partition]);
    store.restore(entriesOf(messages));
    let next = 0;
    for (const m of messages) next = Math.max(next, Number(m.offset) + 1);
    store.setMark(marker, next);
    this.noted.set(store, Date.now());
    return messages.length;
  }

  /** The first and end offsets of a changelog partition, or null when it has none. */
  private async endOffsets(changelog: string, partition: number): Promise<{ low: number; high: number } | null> {
    const admin = await this.kafka().admin();
    try {
      const p = (await admin.partitionOffsets(changelog)).find((o) => o.partition === partition);
      return p ? { low: Number(p.low), high: Number(p.high) } : null;
    } finally {
      await admin.close();
    }
  }
}
