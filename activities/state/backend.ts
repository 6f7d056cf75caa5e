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
import { entryKey, keyGroupOfEntry, parseEntryKey, parseTimerNamespace, timerNamespace } from "./entry-key.js";
import { StateUsageError } from "./errors.js";
import { encodeStateValue } from "./state-codec.js";
import { STATE, stateLabel } from "./state-names.js";
import { TimerIndex, type TimerItem } from "./timers.js";

/** A timer taken from the backend by `pollTimer`: it no longer exists (unless the record aborts). */
export type FiredTimer = TimerItem;

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
  /** Undoes the unit's changes (and an open record's): the transaction that would have made them durable failed. */
  discardUnit(): void;
  /** Applies changelog entries to committed state (last wins, null deletes) and rebuilds the timer index. */
  restore(entries: Iterable<ChangelogEntry>): void;
  /** Entries, bytes and timers held now (uncommitted changes included). */
  size(): StateSize;
  /** Every entry (timers included) of key groups `[from, to)`, as the changelog would carry it. */
  entriesInKeyGroups(from: number, to: number): IterableIterator<ChangelogEntry>;
}

/** Which clock a timer entry name belongs to, or null for a state entry (`GGGGG|$te|...`). */
function timerDomainOf(entry: string): TimeDomain | null {
  if (entry.charCodeAt(6) !== 36 /* $ */ || entry.charCodeAt(7) !== 116 /* t */ || entry.charCodeAt(9) !== 124 /* | */) return null;
  const c = entry.charCodeAt(8);
  return c === 101 /* e */ ? "event" : c === 112 /* p */ ? "processing" : null;
}

/** Heap items beyond this many more than the live timers trigger a compaction. */
const STALE_SLACK = 1024;

/**
 * The in-memory backend. All levels live in one map (reads cost one lookup); each level keeps an
 * undo log of the entries it changed first (their value before), which `abortRecord` and
 * `discardUnit` replay and `takeChanges` reads to list what changed.
 */
export class InMemoryStateBackend implements StateBackend {
  private readonly entries = new Map<string, string>();
  private readonly unitUndo = new Map<string, string | undefined>();
  private readonly recordUndo = new Map<string, string | undefined>();
  private inRecord = false;
  private bytes = 0;
  private readonly liveTimers = { event: 0, processing: 0 };
  private readonly index = { event: new TimerIndex(), processing: new TimerIndex() };

  get(keyGroup: number, key: string, name: string, namespace: string): unknown {
    const json = this.entries.get(entryKey(keyGroup, name, namespace, key));
    return json === undefined ? undefined : JSON.parse(json);
  }

  put(keyGroup: number, key: string, name: string, namespace: string, value: unknown): void {
    this.write(
      entryKey(keyGroup, name, namespace, key),
      encodeStateValue(value, () => stateLabel(name)),
    );
  }

  putJson(keyGroup: number, key: string, name: string, namespace: string, json: string): void {
    this.write(entryKey(keyGroup, name, namespace, key), json);
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
    const list = this.entries.get(entry);
    this.write(entry, list === undefined || list.length <= 2 ? `[${json}]` : `${list.slice(0, -1)},${json}]`);
    return list === undefined;
  }

  remove(keyGroup: number, key: string, name: string, namespace: string): void {
    this.write(entryKey(keyGroup, name, namespace, key), undefined);
  }

  has(keyGroup: number, key: string, name: string, namespace: string): boolean {
    return this.entries.has(entryKey(keyGroup, name, namespace, key));
  }

  registerTimer(domain: TimeDomain, keyGroup: number, key: string, namespace: string, ts: number): void {
    if (!Number.isFinite(ts)) throw new StateUsageError(`a ${domain}-time timer must be set for a finite time, got ${String(ts)}`);
    const entry = entryKey(keyGroup, domain === "event" ? STATE.eventTimers : STATE.processingTimers, timerNamespace(ts, namespace), key);
    if (this.entries.has(entry)) return;
    this.write(entry, "1");
    this.addToIndex(domain, { ts, keyGroup, key, namespace, entry });
  }

  deleteTimer(domain: TimeDomain, keyGroup: number, key: string, namespace: string, ts: number): void {
    if (!Number.isFinite(ts)) return;
    this.write(entryKey(keyGroup, domain === "event" ? STATE.eventTimers : STATE.processingTimers, timerNamespace(ts, namespace), key), undefined);
  }

  nextTimer(domain: TimeDomain): number | null {
    return this.liveTop(domain)?.ts ?? null;
  }

  pollTimer(domain: TimeDomain, upTo: number): FiredTimer | undefined {
    const top = this.liveTop(domain);
    if (top === undefined || top.ts > upTo) return undefined;
    this.index[domain].pop();
    this.write(top.entry, undefined);
    return top;
  }

  beginRecord(): void {
    if (this.inRecord) throw new Error("beginRecord: a record is already open");
    this.inRecord = true;
  }

  commitRecord(): void {
    for (const [entry, before] of this.recordUndo) if (!this.unitUndo.has(entry)) this.unitUndo.set(entry, before);
    this.recordUndo.clear();
    this.inRecord = false;
  }

  abortRecord(): void {
    this.undo(this.recordUndo);
    this.inRecord = false;
  }

  takeChanges(): ChangelogEntry[] {
    if (this.inRecord) throw new Error("takeChanges: a record is still open");
    const changes: ChangelogEntry[] = [];
    for (const [entry, before] of this.unitUndo) {
      const now = this.entries.get(entry);
      if (now !== before) changes.push({ key: entry, value: now ?? null });
    }
    this.unitUndo.clear();
    return changes;
  }

  discardUnit(): void {
    this.abortRecord();
    this.undo(this.unitUndo);
  }

  restore(entries: Iterable<ChangelogEntry>): void {
    if (this.inRecord || this.unitUndo.size > 0) throw new Error("restore: the backend has uncommitted changes");
    for (const { key, value } of entries) this.set(key, value ?? undefined, true);
    for (const domain of ["event", "processing"] as const) this.index[domain].compact((e) => this.entries.has(e));
  }

  size(): StateSize {
    const timers = this.liveTimers.event + this.liveTimers.processing;
    return { entries: this.entries.size - timers, bytes: this.bytes, timers };
  }

  *entriesInKeyGroups(from: number, to: number): IterableIterator<ChangelogEntry> {
    for (const [key, value] of this.entries) {
      const kg = keyGroupOfEntry(key);
      if (kg >= from && kg < to) yield { key, value };
    }
  }

  /** Changes one entry, remembering its value before in the open level's undo log. */
  private write(entry: string, value: string | undefined): void {
    const undo = this.inRecord ? this.recordUndo : this.unitUndo;
    if (!undo.has(entry)) undo.set(entry, this.entries.get(entry));
    this.set(entry, value, false);
  }

  /** Replays an undo log (values before), then empties it. */
  private undo(log: Map<string, string | undefined>): void {
    for (const [entry, before] of log) this.set(entry, before, true);
    log.clear();
  }

  /**
   * Sets an entry, keeping the sizes; a timer entry that comes back (undo, restore) is indexed
   * again, since its heap item may be gone.
   */
  private set(entry: string, value: string | undefined, reindex: boolean): void {
    const before = this.entries.get(entry);
    if (before === value) return;
    if (before !== undefined) this.bytes -= entry.length + before.length;
    if (value === undefined) this.entries.delete(entry);
    else {
      this.entries.set(entry, value);
      this.bytes += entry.length + value.length;
    }
    const domain = timerDomainOf(entry);
    if (domain === null) return;
    this.liveTimers[domain] += (value !== undefined ? 1 : 0) - (before !== undefined ? 1 : 0);
    if (reindex && value !== undefined) {
      const { keyGroup, namespace, key } = parseEntryKey(entry);
      const { ts, namespace: ns } = parseTimerNamespace(namespace);
      this.addToIndex(domain, { ts, keyGroup, key, namespace: ns, entry });
    }
  }

  private addToIndex(domain: TimeDomain, item: TimerItem): void {
    const index = this.index[domain];
    index.push(item);
    if (index.length > 2 * this.liveTimers[domain] + STALE_SLACK) index.compact((e) => this.entries.has(e));
  }

  /** The earliest heap item whose timer still exists, dropping stale ones on the way. */
  private liveTop(domain: TimeDomain): TimerItem | undefined {
    const index = this.index[domain];
    for (let top = index.peek(); top !== undefined; top = index.peek()) {
      if (this.entries.has(top.entry)) return top;
      index.pop();
    }
    return undefined;
  }
}
