/**
 * The `embedded` state backend, for state larger than memory: committed entries live on disk
 * (`DiskStore`, lmdb); the current unit's changes, and committed changes still on their way to
 * disk, live in memory above it. Reads are synchronous (lmdb reads from its memory map). A unit's
 * changes are written after its Kafka transaction committed, with the marker it made, in one lmdb
 * transaction on lmdb's write thread (`persist`), so the data on disk and its mark always agree.
 *
 * Timers are entries too (they travel in the changelog and sit on disk), but as Flink's RocksDB
 * backend may keep timers on the heap, every live timer is also held in memory: a set of their
 * entries and the same ordered index as the in-memory backend, rebuilt from the disk's timers when
 * the store is opened.
 */
import type { TimeDomain } from "../../core/api/windows.js";
import type { ChangelogEntry, StateSize } from "./keyed-operator.js";
import type { FiredTimer, StateBackend } from "./backend.js";
import { DiskStore, type StoreMark } from "./disk-store.js";
import { entryKey, keyGroupOfEntry, parseEntryKey, parseTimerNamespace, timerNamespace } from "./entry-key.js";
import { StateUsageError } from "./errors.js";
import { encodeStateValue } from "./state-codec.js";
import { STATE, stateLabel } from "./state-names.js";
import { TimerIndex, type TimerItem } from "./timers.js";

/** Heap items beyond this many more than the live timers trigger a compaction. */
const STALE_SLACK = 1024;

/** An entry the current unit changed: its value now (undefined: deleted) and before the unit. */
interface UnitSlot {
  value: string | undefined;
  readonly before: string | undefined;
}

/** A timer in the index, with its entry (which says whether it still exists). */
interface IndexedTimer extends TimerItem {
  readonly entry: string;
}

/** Counts of the entries held (committed or current). */
interface Counts {
  entries: number;
  bytes: number;
  event: number;
  processing: number;
}

/** The clock of a timer entry name, null for state. */
function domainOfName(name: string): TimeDomain | null {
  return name === STATE.eventTimers ? "event" : name === STATE.processingTimers ? "processing" : null;
}

/** The clock of a timer entry, null for state. */
function domainOfEntry(entry: string): TimeDomain | null {
  const end = entry.indexOf("|", 6);
  return domainOfName(entry.slice(6, end));
}

/** The state backend whose committed entries are on disk, in a store directory it owns while open. */
export class EmbeddedStateBackend implements StateBackend {
  private readonly unit = new Map<string, UnitSlot>();
  /** The open record's writes: entry, value before, entry, value before, ... */
  private readonly recordLog: Array<string | undefined> = [];
  private inRecord = false;
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
  private readonly index = { event: new TimerIndex<IndexedTimer>(), processing: new TimerIndex<IndexedTimer>() };
  private committed: Counts;
  private current: Counts;
  /** The disk's mark (null: none), kept as it will be after the writes in flight. */
  private mark: StoreMark | null;

  private constructor(private readonly store: DiskStore) {
    this.mark = store.mark();
    this.committed = this.mark
      ? { entries: this.mark.entries, bytes: this.mark.bytes, event: this.mark.eventTimers, processing: this.mark.processingTimers }
      : { entries: 0, bytes: 0, event: 0, processing: 0 };
    this.current = { ...this.committed };
    // Without a mark the data is of unknown standing: start from nothing.
    if (!this.mark) store.wipe();
    else for (const entry of store.timers()) this.addCommittedTimer(entry);
    for (const domain of ["event", "processing"] as const) this.compact(domain);
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

  get(keyGroup: number, key: string, name: string, namespace: string): unknown {
    const json = this.valueOf(entryKey(keyGroup, name, namespace, key), domainOfName(name));
    return json === undefined ? undefined : JSON.parse(json);
  }

  put(keyGroup: number, key: string, name: string, namespace: string, value: unknown): void {
    this.change(
      entryKey(keyGroup, name, namespace, key),
      domainOfName(name),
      encodeStateValue(value, () => stateLabel(name)),
    );
  }

  putJson(keyGroup: number, key: string, name: string, namespace: string, json: string): void {
    this.change(entryKey(keyGroup, name, namespace, key), domainOfName(name), json);
  }

  append(keyGroup: number, key: string, name: string, namespace: string, value: unknown): boolean {
    return this.appendJson(
      keyGroup,
      key,
      name,
      namespace,
      encodeStateValue(value, () => stateLabel(name)),
    );
  }

  appendJson(keyGroup: number, key: string, name: string, namespace: string, json: string): boolean {
    const entry = entryKey(keyGroup, name, namespace, key);
    const domain = domainOfName(name);
    const list = this.valueOf(entry, domain);
    this.change(entry, domain, list === undefined || list.length <= 2 ? `[${json}]` : `${list.slice(0, -1)},${json}]`);
    return list === undefined;
  }

  remove(keyGroup: number, key: string, name: string, namespace: string): void {
    this.change(entryKey(keyGroup, name, namespace, key), domainOfName(name), undefined);
  }

  has(keyGroup: number, key: string, name: string, namespace: string): boolean {
    return this.valueOf(entryKey(keyGroup, name, namespace, key), domainOfName(name)) !== undefined;
  }

  registerTimer(domain: TimeDomain, keyGroup: number, key: string, namespace: string, ts: number): void {
    if (!Number.isFinite(ts)) throw new StateUsageError(`a ${domain}-time timer must be set for a finite time, got ${String(ts)}`);
    const entry = entryKey(keyGroup, domain === "event" ? STATE.eventTimers : STATE.processingTimers, timerNamespace(ts, namespace), key);
    if (this.valueOf(entry, domain) !== undefined) return;
    this.change(entry, domain, "1");
    this.addToIndex(domain, { ts, keyGroup, key, namespace, entry });
  }

  deleteTimer(domain: TimeDomain, keyGroup: number, key: string, namespace: string, ts: number): void {
    if (!Number.isFinite(ts)) return;
    this.change(entryKey(keyGroup, domain === "event" ? STATE.eventTimers : STATE.processingTimers, timerNamespace(ts, namespace), key), domain, undefined);
  }

  nextTimer(domain: TimeDomain): number | null {
    return this.liveTop(domain)?.ts ?? null;
  }

  pollTimer(domain: TimeDomain, upTo: number): FiredTimer | undefined {
    const top = this.liveTop(domain);
    if (top === undefined || top.ts > upTo) return undefined;
    this.index[domain].pop();
    this.change(top.entry, domain, undefined);
    return { ts: top.ts, keyGroup: top.keyGroup, key: top.key, namespace: top.namespace };
  }

  beginRecord(): void {
    if (this.inRecord) throw new Error("beginRecord: a record is already open");
    this.inRecord = true;
  }

  commitRecord(): void {
    this.recordLog.length = 0;
    this.inRecord = false;
  }

  abortRecord(): void {
    const log = this.recordLog;
    // The unit keeps the slots the record made (as changed back): the unit's changes stay in the order they were first made.
    for (let i = log.length - 2; i >= 0; i -= 2) {
      const entry = log[i]!;
      const before = log[i + 1];
      const slot = this.unit.get(entry)!;
      const now = slot.value;
      slot.value = before;
      this.account(entry, domainOfEntry(entry), now, before, true);
    }
    log.length = 0;
    this.inRecord = false;
  }

  takeChanges(): ChangelogEntry[] {
    if (this.inRecord) throw new Error("takeChanges: a record is still open");
    const changes = this.listUnit();
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
    return changes;
  }

  unitChanges(): ChangelogEntry[] {
    if (this.inRecord) throw new Error("unitChanges: a record is still open");
    return this.listUnit();
  }

  discardUnit(): void {
    this.abortRecord();
    for (const [entry, slot] of this.unit) {
      const domain = domainOfEntry(entry);
      // A timer the unit deleted or fired is back: its heap item may be gone.
      if (domain !== null && slot.before !== undefined && slot.value === undefined) this.reindex(entry, domain);
    }
    this.unit.clear();
    this.current = { ...this.committed };
  }

  /**
   * Applies changelog entries to committed state, on disk now (last wins, null deletes), and
   * extends the timer index. Committed changes must be on disk first (`flushed`).
   */
  restore(entries: Iterable<ChangelogEntry>): void {
    if (this.inRecord || this.unit.size > 0) throw new Error("restore: the backend has uncommitted changes");
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
    for (const domain of ["event", "processing"] as const) this.compact(domain);
  }

  size(): StateSize {
    return { entries: this.current.entries, bytes: this.current.bytes, timers: this.current.event + this.current.processing };
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
    if (this.inRecord || this.unit.size > 0) throw new Error("wipe: the backend has uncommitted changes");
    await this.flushed();
    this.store.wipe();
    this.flushing.clear();
    this.queued = [];
    this.timers.clear();
    this.index.event.clear();
    this.index.processing.clear();
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

  /** The value of an entry now: the unit's change, else committed. */
  private valueOf(entry: string, domain: TimeDomain | null): string | undefined {
    const slot = this.unit.get(entry);
    return slot !== undefined ? slot.value : this.committedValue(entry, domain);
  }

  /** The committed value of an entry: a timer from memory; state from a change on its way to disk, else the disk. */
  private committedValue(entry: string, domain: TimeDomain | null): string | undefined {
    if (domain !== null) return this.timers.has(entry) ? "1" : undefined;
    const f = this.flushing.get(entry);
    if (f !== undefined) return f.value ?? undefined;
    return this.store.get(entry);
  }

  /** Changes an entry in the unit, logging its value before for the open record. */
  private change(entry: string, domain: TimeDomain | null, value: string | undefined): void {
    const slot = this.unit.get(entry);
    const before = slot !== undefined ? slot.value : this.committedValue(entry, domain);
    if (before === value) return;
    if (this.inRecord) this.recordLog.push(entry, before);
    if (slot !== undefined) slot.value = value;
    else this.unit.set(entry, { value, before });
    this.account(entry, domain, before, value, false);
  }

  /** Keeps the counts as an entry goes from `from` to `to`; a timer that comes back is indexed again if `reindex`. */
  private account(entry: string, domain: TimeDomain | null, from: string | undefined, to: string | undefined, reindex: boolean): void {
    if (from === to) return;
    const c = this.current;
    c.bytes += (to === undefined ? 0 : entry.length + to.length) - (from === undefined ? 0 : entry.length + from.length);
    const delta = (to !== undefined ? 1 : 0) - (from !== undefined ? 1 : 0);
    if (domain === null) c.entries += delta;
    else {
      c[domain] += delta;
      if (reindex && to !== undefined) this.reindex(entry, domain);
    }
  }

  /** The unit's changes (last value per entry, null when deleted), in the order they were first made. */
  private listUnit(): ChangelogEntry[] {
    const changes: ChangelogEntry[] = [];
    for (const [entry, slot] of this.unit) if (slot.value !== slot.before) changes.push({ key: entry, value: slot.value ?? null });
    return changes;
  }

  private addCommittedTimer(entry: string): void {
    this.timers.add(entry);
    this.reindex(entry, domainOfEntry(entry)!);
  }

  private reindex(entry: string, domain: TimeDomain): void {
    const { keyGroup, key, namespace: timerNs } = parseEntryKey(entry);
    const { ts, namespace } = parseTimerNamespace(timerNs);
    this.addToIndex(domain, { ts, keyGroup, key, namespace, entry });
  }

  private addToIndex(domain: TimeDomain, item: IndexedTimer): void {
    const index = this.index[domain];
    index.push(item);
    if (index.length > 2 * this.current[domain] + STALE_SLACK) this.compact(domain);
  }

  private compact(domain: TimeDomain): void {
    this.index[domain].compact(
      (t) => this.valueOf(t.entry, domain) !== undefined,
      (t) => t.entry,
    );
  }

  /** The earliest heap item whose timer still exists, dropping stale ones on the way. */
  private liveTop(domain: TimeDomain): IndexedTimer | undefined {
    const index = this.index[domain];
    for (let top = index.peek(); top !== undefined; top = index.peek()) {
      if (this.valueOf(top.entry, domain) !== undefined) return top;
      index.pop();
    }
    return undefined;
  }
}
