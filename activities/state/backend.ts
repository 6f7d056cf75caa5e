/**
 * The state backend of a keyed operator instance: entries addressed by (key group, encoded key,
 * state name, namespace) holding JSON text, timers stored as entries too (so they travel in the
 * changelog and survive a restore) with an in-memory ordered index, and three levels of change:
 * committed entries, the current unit (changes not yet durable) and the current record. A record's
 * changes join the unit when it succeeds (`commitRecord`) and vanish when it fails (`abortRecord`);
 * the unit's changes become the changelog (`takeChanges`) or vanish with a failed transaction
 * (`discardUnit`). This is the in-memory backend; an on-disk one implements the same interface.
 */
import type { ChangelogEntry, StateSize } from "./keyed-operator.js";
import type { TimeDomain } from "../../core/api/windows.js";
import { entryKey, MAX_KEY_GROUPS, parseEntryKey, parseTimerNamespace, timerNamespace } from "./entry-key.js";
import { StateUsageError } from "./errors.js";
import { encodeStateValue } from "./state-codec.js";
import { STATE, stateLabel } from "./state-names.js";
import { TimerIndex, type TimerItem } from "./timers.js";

/** A timer taken from the backend by `pollTimer`: it no longer exists (unless the record aborts). */
export type FiredTimer = TimerItem;

/** One entry: where it is, its value now, and its value before the unit when the unit changed it. */
interface Slot {
  readonly keyState: KeyState;
  readonly name: string;
  readonly namespace: string;
  /** Undefined: deleted (the slot stays until the unit ends, to carry the tombstone). */
  value: string | undefined;
  before: string | undefined;
  /** Changed in the current unit (and listed in `dirty`). */
  dirty: boolean;
  /** The clock of a timer entry, null for state. */
  readonly timer: TimeDomain | null;
  /** Length of the entry key, for `size().bytes`. */
  readonly keyLength: number;
}

/** The entries of one key, by state name and namespace: one record's reads and writes stay in this small map. */
interface KeyState {
  readonly keyGroup: number;
  readonly key: string;
  readonly byName: Map<string, Map<string, Slot>>;
}

/** The entry key of a slot (the changelog's message key). */
function entryOf(slot: Slot): string {
  return entryKey(slot.keyState.keyGroup, slot.name, slot.namespace, slot.keyState.key);
}

/** A timer in the index, with the slot that says whether it still exists. */
interface IndexedTimer extends TimerItem {
  readonly slot: Slot;
}

/**
 * What a keyed operator stores its state in. Values are JSON: `put` encodes and refuses what JSON
 * cannot carry (a `StateValueError` naming the state), `get` parses a fresh copy each time.
 */
export interface StateBackend {
  /** The value stored under the entry, parsed (a fresh copy), or undefined. */
  get(keyGroup: number, key: string, name: string, namespace: string): unknown;
  /** Stores `value` (encoded as JSON; a `StateValueError` naming the state if it cannot be). */
  put(keyGroup: number, key: string, name: string, namespace: string, value: unknown): void;
  /** Stores JSON text the caller has already encoded (with `encodeStateValue`). */
  putJson(keyGroup: number, key: string, name: string, namespace: string, json: string): void;
  /** Appends `value` to the JSON array stored under the entry without parsing it; true when the entry was created. */
  append(keyGroup: number, key: string, name: string, namespace: string, value: unknown): boolean;
  /** Appends an already encoded element to the JSON array stored under the entry; true when the entry was created. */
  appendJson(keyGroup: number, key: string, name: string, namespace: string, json: string): boolean;
  /** Deletes the entry (a tombstone in the changelog, if it was committed). */
  remove(keyGroup: number, key: string, name: string, namespace: string): void;
  /** True when the entry exists. */
  has(keyGroup: number, key: string, name: string, namespace: string): boolean;
  /** Sets a timer for `ts` (a finite number); setting one that exists does nothing. */
  registerTimer(domain: TimeDomain, keyGroup: number, key: string, namespace: string, ts: number): void;
  /** Deletes a timer (nothing if there is none). */
  deleteTimer(domain: TimeDomain, keyGroup: number, key: string, namespace: string, ts: number): void;
  /** The time of the earliest timer of `domain`, or null. */
  nextTimer(domain: TimeDomain): number | null;
  /** Removes and returns the earliest timer of `domain` at or before `upTo` (by time, key, namespace), or undefined. */
  pollTimer(domain: TimeDomain, upTo: number): FiredTimer | undefined;
  /** Starts a record: its changes stay apart until `commitRecord` or `abortRecord`. */
  beginRecord(): void;
  /** The record's changes join the unit. */
  commitRecord(): void;
  /** The record's changes are undone, timers included: a failed user function leaves no trace. */
  abortRecord(): void;
  /** The unit's changes become committed; returns them (last value per entry, null when deleted) for the changelog. */
  takeChanges(): ChangelogEntry[];
  /** The unit's changes so far, as `takeChanges` would return them, left pending (`takeChanges` or `discardUnit` follows). */
  unitChanges(): ChangelogEntry[];
  /** Undoes the unit's changes (and an open record's): the transaction that would have made them durable failed. */
  discardUnit(): void;
  /** Applies changelog entries to committed state (last wins, null deletes) and rebuilds the timer index. */
  restore(entries: Iterable<ChangelogEntry>): void;
  /** Entries, bytes and timers held now (uncommitted changes included). */
  size(): StateSize;
  /** Every entry (timers included) of key groups `[from, to)`, as the changelog would carry it. */
  entriesInKeyGroups(from: number, to: number): IterableIterator<ChangelogEntry>;
}

/** Heap items beyond this many more than the live timers trigger a compaction. */
const STALE_SLACK = 1024;

/**
 * The in-memory backend. Entries are slots grouped by key (one lookup finds the key; its states and
 * windows sit in small maps, so a record touching several windows of its key stays in cache). The
 * unit lists the slots it changed, each holding its value before the unit (`discardUnit` puts
 * those back; `takeChanges` lists the slots whose value differs). The open record keeps a flat log
 * of (slot, value before) that `abortRecord` replays backwards; committing a record only forgets
 * the log. Timer heap items point at their slot, so checking that a timer still exists is free.
 */
export class InMemoryStateBackend implements StateBackend {
  /** Per key group, its keys' entries. */
  private readonly groups: Array<Map<string, KeyState> | undefined> = [];
  private readonly dirty: Slot[] = [];
  /** The open record's writes: slot, value before, slot, value before, ... */
  private readonly recordLog: Array<Slot | string | undefined> = [];
  private inRecord = false;
  private bytes = 0;
  private liveEntries = 0;
  private readonly liveTimers = { event: 0, processing: 0 };
  private readonly index = { event: new TimerIndex<IndexedTimer>(), processing: new TimerIndex<IndexedTimer>() };
  /** The key looked up last: a record's reads and writes of its key find it without a lookup. */
  private lastKey: KeyState | undefined;

  get(keyGroup: number, key: string, name: string, namespace: string): unknown {
    const json = this.find(keyGroup, key, name, namespace)?.value;
    return json === undefined ? undefined : JSON.parse(json);
  }

  put(keyGroup: number, key: string, name: string, namespace: string, value: unknown): void {
    this.change(
      this.slotOf(keyGroup, key, name, namespace),
      encodeStateValue(value, () => stateLabel(name)),
    );
  }

  putJson(keyGroup: number, key: string, name: string, namespace: string, json: string): void {
    this.change(this.slotOf(keyGroup, key, name, namespace), json);
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
    const slot = this.slotOf(keyGroup, key, name, namespace);
    const list = slot.value;
    this.change(slot, list === undefined || list.length <= 2 ? `[${json}]` : `${list.slice(0, -1)},${json}]`);
    return list === undefined;
  }

  remove(keyGroup: number, key: string, name: string, namespace: string): void {
    const slot = this.find(keyGroup, key, name, namespace);
    if (slot !== undefined) this.change(slot, undefined);
  }

  has(keyGroup: number, key: string, name: string, namespace: string): boolean {
    return this.find(keyGroup, key, name, namespace)?.value !== undefined;
  }

  registerTimer(domain: TimeDomain, keyGroup: number, key: string, namespace: string, ts: number): void {
    if (!Number.isFinite(ts)) throw new StateUsageError(`a ${domain}-time timer must be set for a finite time, got ${String(ts)}`);
    const slot = this.slotOf(keyGroup, key, domain === "event" ? STATE.eventTimers : STATE.processingTimers, timerNamespace(ts, namespace));
    if (slot.value !== undefined) return;
    this.change(slot, "1");
    this.addToIndex(domain, { ts, keyGroup, key, namespace, slot });
  }

  deleteTimer(domain: TimeDomain, keyGroup: number, key: string, namespace: string, ts: number): void {
    if (!Number.isFinite(ts)) return;
    const slot = this.find(keyGroup, key, domain === "event" ? STATE.eventTimers : STATE.processingTimers, timerNamespace(ts, namespace));
    if (slot !== undefined) this.change(slot, undefined);
  }

  nextTimer(domain: TimeDomain): number | null {
    return this.liveTop(domain)?.ts ?? null;
  }

  pollTimer(domain: TimeDomain, upTo: number): FiredTimer | undefined {
    const top = this.liveTop(domain);
    if (top === undefined || top.ts > upTo) return undefined;
    this.index[domain].pop();
    this.change(top.slot, undefined);
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
    for (let i = log.length - 2; i >= 0; i -= 2) this.apply(log[i] as Slot, log[i + 1] as string | undefined, true);
    log.length = 0;
    this.inRecord = false;
  }

  takeChanges(): ChangelogEntry[] {
    if (this.inRecord) throw new Error("takeChanges: a record is still open");
    const changes: ChangelogEntry[] = [];
    for (const slot of this.dirty) {
      if (slot.value !== slot.before) changes.push({ key: entryOf(slot), value: slot.value ?? null });
      this.settle(slot);
    }
    this.dirty.length = 0;
    return changes;
  }

  unitChanges(): ChangelogEntry[] {
    if (this.inRecord) throw new Error("unitChanges: a record is still open");
    const changes: ChangelogEntry[] = [];
    for (const slot of this.dirty) if (slot.value !== slot.before) changes.push({ key: entryOf(slot), value: slot.value ?? null });
    return changes;
  }

  discardUnit(): void {
    this.abortRecord();
    for (const slot of this.dirty) {
      this.apply(slot, slot.before, true);
      this.settle(slot);
    }
    this.dirty.length = 0;
  }

  restore(entries: Iterable<ChangelogEntry>): void {
    if (this.inRecord || this.dirty.length > 0) throw new Error("restore: the backend has uncommitted changes");
    for (const { key: entry, value } of entries) {
      const { keyGroup, name, namespace, key } = parseEntryKey(entry);
      const slot = value === null ? this.find(keyGroup, key, name, namespace) : this.slotOf(keyGroup, key, name, namespace);
      if (slot === undefined) continue;
      this.apply(slot, value ?? undefined, true);
      if (slot.value === undefined) this.drop(slot);
    }
    for (const domain of ["event", "processing"] as const) this.compact(domain);
  }

  size(): StateSize {
    return { entries: this.liveEntries, bytes: this.bytes, timers: this.liveTimers.event + this.liveTimers.processing };
  }

  *entriesInKeyGroups(from: number, to: number): IterableIterator<ChangelogEntry> {
    for (let kg = Math.max(0, from); kg < Math.min(to, this.groups.length); kg++) {
      for (const ks of this.groups[kg]?.values() ?? [])
        for (const byNs of ks.byName.values()) for (const slot of byNs.values()) if (slot.value !== undefined) yield { key: entryOf(slot), value: slot.value };
    }
  }

  /** The entries of `key`, made if `create`. */
  private keyState(keyGroup: number, key: string, create: boolean): KeyState | undefined {
    const last = this.lastKey;
    if (last !== undefined && last.key === key && last.keyGroup === keyGroup) return last;
    let keys = this.groups[keyGroup];
    if (keys === undefined) {
      if (!create) return undefined;
      if (!Number.isInteger(keyGroup) || keyGroup < 0 || keyGroup >= MAX_KEY_GROUPS)
        throw new RangeError(`key group ${keyGroup} is outside [0, ${MAX_KEY_GROUPS})`);
      keys = this.groups[keyGroup] = new Map();
    }
    let ks = keys.get(key);
    if (ks === undefined) {
      if (!create) return undefined;
      ks = { keyGroup, key, byName: new Map() };
      keys.set(key, ks);
    }
    this.lastKey = ks;
    return ks;
  }

  private find(keyGroup: number, key: string, name: string, namespace: string): Slot | undefined {
    return this.keyState(keyGroup, key, false)?.byName.get(name)?.get(namespace);
  }

  /** The slot of an entry, made (empty) if there is none. */
  private slotOf(keyGroup: number, key: string, name: string, namespace: string): Slot {
    const ks = this.keyState(keyGroup, key, true)!;
    let byNs = ks.byName.get(name);
    if (byNs === undefined) {
      byNs = new Map();
      ks.byName.set(name, byNs);
    }
    let slot = byNs.get(namespace);
    if (slot === undefined) {
      const timer = name === STATE.eventTimers ? "event" : name === STATE.processingTimers ? "processing" : null;
      const keyLength = 8 + name.length + namespace.length + key.length;
      slot = { keyState: ks, name, namespace, value: undefined, before: undefined, dirty: false, timer, keyLength };
      byNs.set(namespace, slot);
    }
    return slot;
  }

  /** Changes a slot, logging its value before for the open record and the unit. */
  private change(slot: Slot, value: string | undefined): void {
    const before = slot.value;
    if (before === value) return;
    if (this.inRecord) this.recordLog.push(slot, before);
    if (!slot.dirty) {
      slot.dirty = true;
      slot.before = before;
      this.dirty.push(slot);
    }
    this.apply(slot, value, false);
  }

  /** After the unit: the slot is clean, and gone if deleted. */
  private settle(slot: Slot): void {
    slot.dirty = false;
    slot.before = undefined;
    if (slot.value === undefined) this.drop(slot);
  }

  /** Removes a deleted slot from its key's maps (and the key, when it has no entries left). */
  private drop(slot: Slot): void {
    const ks = slot.keyState;
    const byNs = ks.byName.get(slot.name);
    if (byNs?.get(slot.namespace) !== slot) return;
    byNs.delete(slot.namespace);
    if (byNs.size > 0) return;
    ks.byName.delete(slot.name);
    const keys = this.groups[ks.keyGroup];
    if (ks.byName.size > 0 || keys?.get(ks.key) !== ks) return;
    keys.delete(ks.key);
    if (this.lastKey === ks) this.lastKey = undefined;
  }

  /**
   * Sets a slot's value, keeping the sizes; a timer that comes back (undo, restore) is indexed
   * again, since its heap item may be gone.
   */
  private apply(slot: Slot, value: string | undefined, reindex: boolean): void {
    const before = slot.value;
    if (before === value) return;
    slot.value = value;
    const delta = (value !== undefined ? 1 : 0) - (before !== undefined ? 1 : 0);
    this.bytes += (value === undefined ? 0 : slot.keyLength + value.length) - (before === undefined ? 0 : slot.keyLength + before.length);
    if (slot.timer === null) {
      this.liveEntries += delta;
      return;
    }
    this.liveTimers[slot.timer] += delta;
    if (reindex && value !== undefined) {
      const { ts, namespace } = parseTimerNamespace(slot.namespace);
      this.addToIndex(slot.timer, { ts, keyGroup: slot.keyState.keyGroup, key: slot.keyState.key, namespace, slot });
    }
  }
  private addToIndex(domain: TimeDomain, item: IndexedTimer): void {
    const index = this.index[domain];
    index.push(item);
    if (index.length > 2 * this.liveTimers[domain] + STALE_SLACK) this.compact(domain);
  }

  private compact(domain: TimeDomain): void {
    this.index[domain].compact(
      (t) => t.slot.value !== undefined,
      (t) => t.slot,
    );
  }

  /** The earliest heap item whose timer still exists, dropping stale ones on the way. */
  private liveTop(domain: TimeDomain): IndexedTimer | undefined {
    const index = this.index[domain];
    for (let top = index.peek(); top !== undefined; top = index.peek()) {
      if (top.slot.value !== undefined) return top;
      index.pop();
    }
    return undefined;
  }
}
