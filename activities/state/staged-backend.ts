/**
 * What both state backends share: the state and timer operations over entries, the stages a
 * change passes through (the open record, whose undo log `abortRecord` replays, then the unit,
 * which `takeChanges` lists and commits or `discardUnit` undoes), the counts `size` reports, and
 * the in-memory ordered index of timers. A backend says where an entry lives (its `Ref`), how its
 * value is read and staged in the unit, and what committing or discarding the unit does to it.
 */
import type { TimeDomain } from "../../core/api/windows.js";
import type { ChangelogEntry, StateSize } from "./keyed-operator.js";
import { parseTimerNamespace, timerNamespace } from "./entry-key.js";
import { StateUsageError } from "./errors.js";
import { encodeStateValue } from "./state-codec.js";
import { STATE, stateLabel } from "./state-names.js";
import { TimerIndex, type TimerItem } from "./timers.js";

/** Heap items beyond this many more than the live timers trigger a compaction. */
const STALE_SLACK = 1024;

/** Counts of the entries held: state entries, their bytes (entry key and value), and timers per clock. */
export interface StateCounts {
  entries: number;
  bytes: number;
  event: number;
  processing: number;
}

/** A timer in the index, with the backend's reference to its entry (which says whether it still exists). */
export interface IndexedTimer<Ref> extends TimerItem {
  readonly ref: Ref;
}

/** The clock of a timer entry name, null for state. */
export function timerDomainOf(name: string): TimeDomain | null {
  return name === STATE.eventTimers ? "event" : name === STATE.processingTimers ? "processing" : null;
}

/** The entry name of the timers of `domain`. */
function timerStateName(domain: TimeDomain): string {
  return domain === "event" ? STATE.eventTimers : STATE.processingTimers;
}

/**
 * A state backend whose changes are staged in a record and a unit; `Ref` is how the backend
 * addresses an entry (the in-memory slot, or the embedded backend's entry key). Every value a
 * backend hands back through `valueAt` is the entry's value now: the record's and the unit's
 * changes included.
 */
export abstract class StagedStateBackend<Ref> {
  /** The open record's writes: ref, value before, ref, value before, ... */
  private readonly recordLog: Array<Ref | string | undefined> = [];
  private inRecord = false;
  private readonly index = { event: new TimerIndex<IndexedTimer<Ref>>(), processing: new TimerIndex<IndexedTimer<Ref>>() };
  /** The counts now, uncommitted changes included. */
  protected current: StateCounts = { entries: 0, bytes: 0, event: 0, processing: 0 };

  /** The entry, if the backend may hold it (a ref whose value is undefined is fine), or undefined. */
  protected abstract find(keyGroup: number, key: string, name: string, namespace: string): Ref | undefined;
  /** The entry, made (empty) if the backend needs to make it. */
  protected abstract place(keyGroup: number, key: string, name: string, namespace: string): Ref;
  /** The entry's value now (undefined: none); `domain` is its clock, null for state. */
  protected abstract valueAt(ref: Ref, domain: TimeDomain | null): string | undefined;
  /** Puts the change of an entry from `before` (its value now) to `value` into the unit, keeping the counts. */
  protected abstract stage(ref: Ref, domain: TimeDomain | null, before: string | undefined, value: string | undefined): void;
  /** Sets an entry the open record changed back to `before`, keeping the counts; a timer that comes back is indexed again. */
  protected abstract undo(ref: Ref, before: string | undefined): void;
  /** True when the unit holds changes. */
  protected abstract get unitOpen(): boolean;
  /** The unit's changes (last value per entry, null when deleted), in the order they were first made. */
  protected abstract listUnit(): ChangelogEntry[];
  /** The unit's changes (`changes`, as `listUnit` made them) become committed; the unit is empty after. */
  protected abstract commitUnit(changes: ChangelogEntry[]): void;
  /** Puts back every entry the unit changed, as it was before the unit; the unit is empty after. */
  protected abstract rollBackUnit(): void;

  /** The value stored under the entry, parsed (a fresh copy), or undefined. */
  get(keyGroup: number, key: string, name: string, namespace: string): unknown {
    const json = this.read(keyGroup, key, name, namespace);
    return json === undefined ? undefined : JSON.parse(json);
  }

  /** Stores `value` (encoded as JSON; a `StateValueError` naming the state if it cannot be). */
  put(keyGroup: number, key: string, name: string, namespace: string, value: unknown): void {
    this.change(
      this.place(keyGroup, key, name, namespace),
      timerDomainOf(name),
      encodeStateValue(value, () => stateLabel(name)),
    );
  }

  /** Stores JSON text the caller has already encoded (with `encodeStateValue`). */
  putJson(keyGroup: number, key: string, name: string, namespace: string, json: string): void {
    this.change(this.place(keyGroup, key, name, namespace), timerDomainOf(name), json);
  }

  /** Appends `value` to the JSON array stored under the entry without parsing it; true when the entry was created. */
  append(keyGroup: number, key: string, name: string, namespace: string, value: unknown): boolean {
    return this.appendJson(
      keyGroup,
      key,
      name,
      namespace,
      encodeStateValue(value, () => stateLabel(name)),
    );
  }

  /** Appends an already encoded element to the JSON array stored under the entry; true when the entry was created. */
  appendJson(keyGroup: number, key: string, name: string, namespace: string, json: string): boolean {
    const ref = this.place(keyGroup, key, name, namespace);
    const domain = timerDomainOf(name);
    const list = this.valueAt(ref, domain);
    this.change(ref, domain, list === undefined || list.length <= 2 ? `[${json}]` : `${list.slice(0, -1)},${json}]`);
    return list === undefined;
  }

  /** Deletes the entry (a tombstone in the changelog, if it was committed). */
  remove(keyGroup: number, key: string, name: string, namespace: string): void {
    const ref = this.find(keyGroup, key, name, namespace);
    if (ref !== undefined) this.change(ref, timerDomainOf(name), undefined);
  }

  /** True when the entry exists. */
  has(keyGroup: number, key: string, name: string, namespace: string): boolean {
    return this.read(keyGroup, key, name, namespace) !== undefined;
  }

  /** Sets a timer for `ts` (a finite number); setting one that exists does nothing. */
  registerTimer(domain: TimeDomain, keyGroup: number, key: string, namespace: string, ts: number): void {
    if (!Number.isFinite(ts)) throw new StateUsageError(`a ${domain}-time timer must be set for a finite time, got ${String(ts)}`);
    const ref = this.place(keyGroup, key, timerStateName(domain), timerNamespace(ts, namespace));
    if (this.valueAt(ref, domain) !== undefined) return;
    this.change(ref, domain, "1");
    this.addToIndex(domain, { ts, keyGroup, key, namespace, ref });
  }

  /** Deletes a timer (nothing if there is none). */
  deleteTimer(domain: TimeDomain, keyGroup: number, key: string, namespace: string, ts: number): void {
    if (!Number.isFinite(ts)) return;
    const ref = this.find(keyGroup, key, timerStateName(domain), timerNamespace(ts, namespace));
    if (ref !== undefined) this.change(ref, domain, undefined);
  }

  /** The time of the earliest timer of `domain`, or null. */
  nextTimer(domain: TimeDomain): number | null {
    return this.liveTop(domain)?.ts ?? null;
  }

  /** Removes and returns the earliest timer of `domain` at or before `upTo` (by time, key, namespace), or undefined. */
  pollTimer(domain: TimeDomain, upTo: number): TimerItem | undefined {
    const top = this.liveTop(domain);
    if (top === undefined || top.ts > upTo) return undefined;
    this.index[domain].pop();
    this.change(top.ref, domain, undefined);
    return { ts: top.ts, keyGroup: top.keyGroup, key: top.key, namespace: top.namespace };
  }

  /** Starts a record: its changes stay apart until `commitRecord` or `abortRecord`. */
  beginRecord(): void {
    if (this.inRecord) throw new Error("beginRecord: a record is already open");
    this.inRecord = true;
  }

  /** The record's changes join the unit (they are there already: committing only forgets the undo log). */
  commitRecord(): void {
    this.recordLog.length = 0;
    this.inRecord = false;
  }

  /** The record's changes are undone, timers included: a failed user function leaves no trace. */
  abortRecord(): void {
    const log = this.recordLog;
    for (let i = log.length - 2; i >= 0; i -= 2) this.undo(log[i] as Ref, log[i + 1] as string | undefined);
    log.length = 0;
    this.inRecord = false;
  }

  /** The unit's changes become committed; returns them (last value per entry, null when deleted) for the changelog. */
  takeChanges(): ChangelogEntry[] {
    if (this.inRecord) throw new Error("takeChanges: a record is still open");
    const changes = this.listUnit();
    this.commitUnit(changes);
    return changes;
  }

  /** The unit's changes so far, as `takeChanges` would return them, left pending (`takeChanges` or `discardUnit` follows). */
  unitChanges(): ChangelogEntry[] {
    if (this.inRecord) throw new Error("unitChanges: a record is still open");
    return this.listUnit();
  }

  /** Undoes the unit's changes (and an open record's): the transaction that would have made them durable failed. */
  discardUnit(): void {
    this.abortRecord();
    this.rollBackUnit();
  }

  /** Entries, bytes and timers held now (uncommitted changes included). */
  size(): StateSize {
    const c = this.current;
    return { entries: c.entries, bytes: c.bytes, timers: c.event + c.processing };
  }

  /** Throws unless no record is open and the unit is empty: `what` (a restore, a wipe) needs settled state. */
  protected assertSettled(what: string): void {
    if (this.inRecord || this.unitOpen) throw new Error(`${what}: the backend has uncommitted changes`);
  }

  /** Keeps the counts as an entry whose key is `keyLength` long goes from `from` to `to`. */
  protected count(keyLength: number, domain: TimeDomain | null, from: string | undefined, to: string | undefined): void {
    const c = this.current;
    c.bytes += (to === undefined ? 0 : keyLength + to.length) - (from === undefined ? 0 : keyLength + from.length);
    const delta = (to !== undefined ? 1 : 0) - (from !== undefined ? 1 : 0);
    if (domain === null) c.entries += delta;
    else c[domain] += delta;
  }

  /** Indexes the timer entry `ref` of key `key`, whose entry namespace is `timerNs` (its time, then its namespace). */
  protected indexTimer(domain: TimeDomain, keyGroup: number, key: string, timerNs: string, ref: Ref): void {
    const { ts, namespace } = parseTimerNamespace(timerNs);
    this.addToIndex(domain, { ts, keyGroup, key, namespace, ref });
  }

  /** Drops the index's stale and duplicate items, of both clocks. */
  protected compactTimers(): void {
    for (const domain of ["event", "processing"] as const) this.compact(domain);
  }

  /** Empties the timer index of both clocks. */
  protected clearTimers(): void {
    this.index.event.clear();
    this.index.processing.clear();
  }

  /** The entry's value now, or undefined. */
  private read(keyGroup: number, key: string, name: string, namespace: string): string | undefined {
    const ref = this.find(keyGroup, key, name, namespace);
    return ref === undefined ? undefined : this.valueAt(ref, timerDomainOf(name));
  }

  /** Changes an entry, logging its value before for the open record. */
  private change(ref: Ref, domain: TimeDomain | null, value: string | undefined): void {
    const before = this.valueAt(ref, domain);
    if (before === value) return;
    if (this.inRecord) this.recordLog.push(ref, before);
    this.stage(ref, domain, before, value);
  }

  private addToIndex(domain: TimeDomain, item: IndexedTimer<Ref>): void {
    const index = this.index[domain];
    index.push(item);
    if (index.length > 2 * this.current[domain] + STALE_SLACK) this.compact(domain);
  }

  private compact(domain: TimeDomain): void {
    this.index[domain].compact(
      (t) => this.valueAt(t.ref, domain) !== undefined,
      (t) => t.ref,
    );
  }

  /** The earliest heap item whose timer still exists, dropping stale ones on the way. */
  private liveTop(domain: TimeDomain): IndexedTimer<Ref> | undefined {
    const index = this.index[domain];
    for (let top = index.peek(); top !== undefined; top = index.peek()) {
      if (this.valueAt(top.ref, domain) !== undefined) return top;
      index.pop();
    }
    return undefined;
  }
}
