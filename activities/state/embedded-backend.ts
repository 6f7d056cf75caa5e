/**
 * The `embedded` state backend, for state larger than memory: committed entries live on disk
 * (`DiskStore`, lmdb); the current unit's changes, and committed changes still on their way to
 * disk, live in memory above it. Reads are synchronous (lmdb reads from its memory map). A unit's
 * changes are written after its Kafka transaction committed, with the marker it made, in one lmdb
 * transaction on lmdb's write thread (`persist`), so the data on disk and its mark always agree.
 *
 * Timers are entries too (they travel in the changelog and sit on disk), but as Flink's RocksDB
 * backend may keep timers on the heap, every live timer is also held in memory: a set of their
 * entries and the ordered index both backends share (`StagedStateBackend`), rebuilt from the
 * disk's timers when the store is opened.
 */
import type { TimeDomain } from "../../core/api/windows.js";
import type { ChangelogEntry } from "./keyed-operator.js";
import type { StateBackend } from "./backend.js";
import { DiskStore, type StoreMark } from "./disk-store.js";
import { entryKey, keyGroupOfEntry, parseEntryKey } from "./entry-key.js";
import { StagedStateBackend, timerDomainOf, type StateCounts } from "./staged-backend.js";

/** An entry the current unit changed: its value now (undefined: deleted) and before the unit. */
interface UnitSlot {
  value: string | undefined;
  readonly before: string | undefined;
}

/** The clock of a timer entry, null for state. */
function domainOfEntry(entry: string): TimeDomain | null {
  const end = entry.indexOf("|", 6);
  return timerDomainOf(entry.slice(6, end));
}

/**
 * The state backend whose committed entries are on disk, in a store directory it owns while open.
 * Its entries are addressed by their entry key; the unit is a map above the committed state.
 */
export class EmbeddedStateBackend extends StagedStateBackend<string> implements StateBackend {
  private readonly unit = new Map<string, UnitSlot>();
  /** Committed changes not yet on disk, with the write that carries them (0: not handed to a write yet). */
  private readonly flushing = new Map<string, { value: string | null; write: number }>();
  /** Committed changes not yet handed to a write (`persist` hands them over). */
  private queued: ChangelogEntry[] = [];
  private writes = 0;
  private inFlight: Promise<void> = Promise.resolve();
  /** The first failed write, if any: the disk no longer follows, so the store must be rebuilt. */
  private writeError: Error | null = null;
  /** Every committed timer entry (timers are also held in memory). */
  private readonly timers = new Set<string>();
  /** The counts as committed (the counts now are `current`). */
  private committed: StateCounts;
  /** The disk's mark (null: none), kept as it will be after the writes in flight. */
  private mark: StoreMark | null;

  private constructor(private readonly store: DiskStore) {
    super();
    this.mark = store.mark();
    this.committed = this.mark
      ? { entries: this.mark.entries, bytes: this.mark.bytes, event: this.mark.eventTimers, processing: this.mark.processingTimers }
      : { entries: 0, bytes: 0, event: 0, processing: 0 };
    this.current = { ...this.committed };
    // Without a mark the data is of unknown standing: start from nothing.
    if (!this.mark) store.wipe();
    else for (const entry of store.timers()) this.addCommittedTimer(entry);
    this.compactTimers();
  }

  /** Opens the store in `dir` (`StoreBusyError` if another live process holds it). */
  static open(dir: string): EmbeddedStateBackend {
    return new EmbeddedStateBackend(DiskStore.open(dir));
  }

  /** The marker and changelog offset the data on disk (plus the writes in flight) is current at; null when unknown. */
  get stored(): { marker: number; offset: number } | null {
    return this.mark ? { marker: this.mark.marker, offset: this.mark.offset } : null;
  }

  /** The first write to disk that failed, if any (the store must then be wiped and rebuilt). */
  get failed(): Error | null {
    return this.writeError;
  }

  /** True when committed changes were taken but never handed to a write (`persist`). */
  get unpersisted(): boolean {
    return this.queued.length > 0;
  }

  /** True when nothing is stored, committed or not. */
  get empty(): boolean {
    return this.current.entries + this.current.event + this.current.processing === 0 && this.unit.size === 0;
  }

  /**
   * Applies changelog entries to committed state, on disk now (last wins, null deletes), and
   * extends the timer index. Committed changes must be on disk first (`flushed`).
   */
  restore(entries: Iterable<ChangelogEntry>): void {
    this.assertSettled("restore");
    if (this.flushing.size > 0 || this.queued.length > 0) throw new Error("restore: committed changes are still being written (await flushed())");
    const last = new Map<string, string | null>();
    for (const { key, value } of entries) {
      parseEntryKey(key);
      last.delete(key);
      last.set(key, value);
    }
    const writes: ChangelogEntry[] = [];
    for (const [entry, value] of last) {
      const domain = domainOfEntry(entry);
      const before = this.committedValue(entry, domain);
      const after = value ?? undefined;
      if (before === after) continue;
      this.account(entry, domain, before, after, false);
      if (domain !== null) {
        if (after === undefined) this.timers.delete(entry);
        else this.addCommittedTimer(entry);
      }
      writes.push({ key: entry, value });
    }
    this.store.writeSync(writes);
    this.committed = { ...this.current };
    this.compactTimers();
  }

  *entriesInKeyGroups(from: number, to: number): IterableIterator<ChangelogEntry> {
    const inRange = (entry: string): boolean => {
      const kg = keyGroupOfEntry(entry);
      return kg >= from && kg < to;
    };
    // What memory holds over the disk: committed changes on their way, then the unit's.
    const above = new Map<string, string | undefined>();
    for (const [entry, f] of this.flushing) if (inRange(entry)) above.set(entry, f.value ?? undefined);
    for (const [entry, slot] of this.unit) if (inRange(entry)) above.set(entry, slot.value);
    for (const entry of this.timers) if (inRange(entry) && !this.unit.has(entry)) above.set(entry, "1");
    for (const stored of this.store.range(from, to)) if (!above.has(stored.key)) yield stored;
    for (const [entry, value] of above) if (value !== undefined) yield { key: entry, value };
  }

  /**
   * The unit that made the committed changes taken since the last call has committed at `marker`:
   * hands them to one disk write together with the mark, in the background.
   */
  persist(marker: number): void {
    const changes = this.queued;
    this.queued = [];
    const write = ++this.writes;
    for (const { key } of changes) {
      const f = this.flushing.get(key);
      if (f) f.write = write;
    }
    this.mark = {
      marker,
      offset: this.mark?.offset ?? 0,
      entries: this.committed.entries,
      bytes: this.committed.bytes,
      eventTimers: this.committed.event,
      processingTimers: this.committed.processing,
    };
    const written = this.store.write(changes, this.mark).then(
      () => {
        for (const { key } of changes) if (this.flushing.get(key)?.write === write) this.flushing.delete(key);
      },
      (err: unknown) => {
        this.writeError ??= err instanceof Error ? err : new Error(String(err));
      },
    );
    this.inFlight = this.inFlight.then(() => written);
  }

  /** Notes that the changelog offset `offset` is at or before the one marker `marker` is current at; stored with the next write. */
  noteOffset(marker: number, offset: number): void {
    if (this.mark && this.mark.marker === marker && offset > this.mark.offset) this.mark = { ...this.mark, offset };
  }

  /** Sets the mark now, after a restore: the data is current at `marker`, replayable from `offset`. */
  setMark(marker: number, offset: number): void {
    this.mark = {
      marker,
      offset,
      entries: this.committed.entries,
      bytes: this.committed.bytes,
      eventTimers: this.committed.event,
      processingTimers: this.committed.processing,
    };
    this.store.setMark(this.mark);
  }

  /** Resolves once every write handed over so far is on disk (or failed: see `failed`). */
  flushed(): Promise<void> {
    return this.inFlight;
  }

  /** Deletes everything, on disk and in memory (nothing may be pending). */
  async wipe(): Promise<void> {
    this.assertSettled("wipe");
    await this.flushed();
    this.store.wipe();
    this.flushing.clear();
    this.queued = [];
    this.timers.clear();
    this.clearTimers();
    this.committed = { entries: 0, bytes: 0, event: 0, processing: 0 };
    this.current = { ...this.committed };
    this.mark = null;
    this.writeError = null;
  }

  /** Waits for the writes in flight and closes the store (its directory may be opened again). */
  async close(): Promise<void> {
    await this.flushed();
    await this.store.close();
  }

  protected get unitOpen(): boolean {
    return this.unit.size > 0;
  }

  /** An entry key addresses an entry whether or not it exists: finding is placing. */
  protected find(keyGroup: number, key: string, name: string, namespace: string): string {
    return this.place(keyGroup, key, name, namespace);
  }

  protected place(keyGroup: number, key: string, name: string, namespace: string): string {
    return entryKey(keyGroup, name, namespace, key);
  }

  /** The value of an entry now: the unit's change, else committed. */
  protected valueAt(entry: string, domain: TimeDomain | null): string | undefined {
    const slot = this.unit.get(entry);
    return slot !== undefined ? slot.value : this.committedValue(entry, domain);
  }

  protected stage(entry: string, domain: TimeDomain | null, before: string | undefined, value: string | undefined): void {
    const slot = this.unit.get(entry);
    if (slot !== undefined) slot.value = value;
    else this.unit.set(entry, { value, before });
    this.account(entry, domain, before, value, false);
  }

  /** The unit keeps the slots the record made (as changed back): the unit's changes stay in the order they were first made. */
  protected undo(entry: string, before: string | undefined): void {
    const slot = this.unit.get(entry)!;
    const now = slot.value;
    slot.value = before;
    this.account(entry, domainOfEntry(entry), now, before, true);
  }

  protected listUnit(): ChangelogEntry[] {
    const changes: ChangelogEntry[] = [];
    for (const [entry, slot] of this.unit) if (slot.value !== slot.before) changes.push({ key: entry, value: slot.value ?? null });
    return changes;
  }

  /** Committed timers join the set in memory; committed state waits in `flushing` and `queued` for `persist` to write it after the unit's Kafka commit. */
  protected commitUnit(changes: ChangelogEntry[]): void {
    this.unit.clear();
    for (const change of changes) {
      const { key: entry, value } = change;
      if (domainOfEntry(entry) !== null) {
        if (value === null) this.timers.delete(entry);
        else this.timers.add(entry);
      } else this.flushing.set(entry, { value, write: 0 });
      this.queued.push(change);
    }
    this.committed = { ...this.current };
  }

  protected rollBackUnit(): void {
    for (const [entry, slot] of this.unit) {
      const domain = domainOfEntry(entry);
      // A timer the unit deleted or fired is back: its heap item may be gone.
      if (domain !== null && slot.before !== undefined && slot.value === undefined) this.reindex(entry, domain);
    }
    this.unit.clear();
    this.current = { ...this.committed };
  }

  /** The committed value of an entry: a timer from memory; state from a change on its way to disk, else the disk. */
  private committedValue(entry: string, domain: TimeDomain | null): string | undefined {
    if (domain !== null) return this.timers.has(entry) ? "1" : undefined;
    const f = this.flushing.get(entry);
    if (f !== undefined) return f.value ?? undefined;
    return this.store.get(entry);
  }

  /** Keeps the counts as an entry goes from `from` to `to`; a timer that comes back is indexed again if `reindex`. */
  private account(entry: string, domain: TimeDomain | null, from: string | undefined, to: string | undefined, reindex: boolean): void {
    if (from === to) return;
    this.count(entry.length, domain, from, to);
    if (reindex && to !== undefined && domain !== null) this.reindex(entry, domain);
  }

  private addCommittedTimer(entry: string): void {
    this.timers.add(entry);
    this.reindex(entry, domainOfEntry(entry)!);
  }

  private reindex(entry: string, domain: TimeDomain): void {
    const { keyGroup, key, namespace } = parseEntryKey(entry);
    this.indexTimer(domain, keyGroup, key, namespace, entry);
  }
}
