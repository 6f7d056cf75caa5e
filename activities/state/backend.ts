/**
 * The state backend of a keyed operator instance: entries addressed by (key group, encoded key,
 * state name, namespace) holding JSON text, timers stored as entries too (so they travel in the
 * changelog and survive a restore) with an in-memory ordered index, and three levels of change:
 * committed entries, the current unit (changes not yet durable) and the current record. A record's
 * changes join the unit when it succeeds (`commitRecord`) and vanish when it fails (`abortRecord`);
 * the unit's changes become the changelog (`takeChanges`) or vanish with a failed transaction
 * (`discardUnit`). This is the interface and the in-memory backend; an on-disk one implements the
 * same interface, and what the two share (those levels, the timer index) is `StagedStateBackend`.
 */
import type { ChangelogEntry, StateSize } from "./keyed-operator.js";
import type { TimeDomain } from "../../core/api/windows.js";
import { entryKey, MAX_KEY_GROUPS, parseEntryKey } from "./entry-key.js";
import { StagedStateBackend, timerDomainOf } from "./staged-backend.js";
import type { TimerItem } from "./timers.js";

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

/**
 * The in-memory backend. Entries are slots grouped by key (one lookup finds the key; its states and
 * windows sit in small maps, so a record touching several windows of its key stays in cache). The
 * unit lists the slots it changed, each holding its value before the unit (`discardUnit` puts
 * those back; `takeChanges` lists the slots whose value differs). The open record's undo log
 * (`StagedStateBackend`) holds (slot, value before) pairs. Timer heap items point at their slot,
 * so checking that a timer still exists is free.
 */
export class InMemoryStateBackend extends StagedStateBackend<Slot> implements StateBackend {
  /** Per key group, its keys' entries. */
  private readonly groups: Array<Map<string, KeyState> | undefined> = [];
  private readonly dirty: Slot[] = [];
  /** The key looked up last: a record's reads and writes of its key find it without a lookup. */
  private lastKey: KeyState | undefined;

  restore(entries: Iterable<ChangelogEntry>): void {
    this.assertSettled("restore");
    for (const { key: entry, value } of entries) {
      const { keyGroup, name, namespace, key } = parseEntryKey(entry);
      const slot = value === null ? this.find(keyGroup, key, name, namespace) : this.place(keyGroup, key, name, namespace);
      if (slot === undefined) continue;
      this.apply(slot, value ?? undefined, true);
      if (slot.value === undefined) this.drop(slot);
    }
    this.compactTimers();
  }

  *entriesInKeyGroups(from: number, to: number): IterableIterator<ChangelogEntry> {
    for (let kg = Math.max(0, from); kg < Math.min(to, this.groups.length); kg++) {
      for (const ks of this.groups[kg]?.values() ?? [])
        for (const byNs of ks.byName.values()) for (const slot of byNs.values()) if (slot.value !== undefined) yield { key: entryOf(slot), value: slot.value };
    }
  }

  protected get unitOpen(): boolean {
    return this.dirty.length > 0;
  }

  protected find(keyGroup: number, key: string, name: string, namespace: string): Slot | undefined {
    return this.keyState(keyGroup, key, false)?.byName.get(name)?.get(namespace);
  }

  /** The slot of an entry, made (empty) if there is none. */
  protected place(keyGroup: number, key: string, name: string, namespace: string): Slot {
    const ks = this.keyState(keyGroup, key, true)!;
    let byNs = ks.byName.get(name);
    if (byNs === undefined) {
      byNs = new Map();
      ks.byName.set(name, byNs);
    }
    let slot = byNs.get(namespace);
    if (slot === undefined) {
      const keyLength = 8 + name.length + namespace.length + key.length;
      slot = { keyState: ks, name, namespace, value: undefined, before: undefined, dirty: false, timer: timerDomainOf(name), keyLength };
      byNs.set(namespace, slot);
    }
    return slot;
  }

  protected valueAt(slot: Slot): string | undefined {
    return slot.value;
  }

  /** Notes the slot's value before the unit (if the unit has not changed it yet) and sets it. */
  protected stage(slot: Slot, _domain: TimeDomain | null, before: string | undefined, value: string | undefined): void {
    if (!slot.dirty) {
      slot.dirty = true;
      slot.before = before;
      this.dirty.push(slot);
    }
    this.apply(slot, value, false);
  }

  protected undo(slot: Slot, before: string | undefined): void {
    this.apply(slot, before, true);
  }

  protected listUnit(): ChangelogEntry[] {
    const changes: ChangelogEntry[] = [];
    for (const slot of this.dirty) if (slot.value !== slot.before) changes.push({ key: entryOf(slot), value: slot.value ?? null });
    return changes;
  }

  /** The slots' values are committed already: the unit only forgets them (and drops the deleted ones). */
  protected commitUnit(): void {
    for (const slot of this.dirty) this.settle(slot);
    this.dirty.length = 0;
  }

  protected rollBackUnit(): void {
    for (const slot of this.dirty) {
      this.apply(slot, slot.before, true);
      this.settle(slot);
    }
    this.dirty.length = 0;
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
   * Sets a slot's value, keeping the counts; a timer that comes back (undo, restore) is indexed
   * again, since its heap item may be gone.
   */
  private apply(slot: Slot, value: string | undefined, reindex: boolean): void {
    const before = slot.value;
    if (before === value) return;
    slot.value = value;
    this.count(slot.keyLength, slot.timer, before, value);
    if (reindex && value !== undefined && slot.timer !== null) this.indexTimer(slot.timer, slot.keyState.keyGroup, slot.keyState.key, slot.namespace, slot);
  }
}
