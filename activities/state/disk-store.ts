/**
 * The on-disk part of the `embedded` state backend: one lmdb environment per store directory, with
 * the committed state entries, the timers (apart, so that opening reads only them to rebuild the
 * in-memory timer index) and the mark the data is current at, all written in one transaction.
 * lmdb was chosen by measurement (`bench/state-stores.ts`): synchronous reads from the memory map,
 * writes on its own thread. A directory belongs to one process at a time (a lock file with its pid);
 * a second live process gets `StoreBusyError`. lmdb maps its file into memory, so a file damaged
 * from outside can crash the process instead of failing a call: a file shorter than lmdb's last page
 * is refused (`StoreDamagedError`), and a process that died while opening a store leaves a mark
 * that makes the next one discard the store's data (it is a cache of the changelog).
 */
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { open, type Database, type RootDatabase } from "lmdb";
import { SageError } from "../../core/errors.js";
import type { ChangelogEntry } from "./keyed-operator.js";
import { STATE } from "./state-names.js";

/** The format of what a store directory holds; a store of another version is rebuilt. */
const FORMAT = 1;
/** Entry keys longer than this (UTF-16 units; up to 3 bytes each in UTF-8) are stored by hash: lmdb keys stop at 1,978 bytes. */
const LONG_KEY = 600;
/** How a timer entry's name starts, after its key group. */
const TIMER_EVENT = `${STATE.eventTimers}|`;
const TIMER_PROCESSING = `${STATE.processingTimers}|`;
/** Restore writes this many entries per transaction. */
const RESTORE_CHUNK = 20_000;

/** Where the committed data of a store stands. */
export interface StoreMark {
  /** The state-sequence marker (committed units) the data is current at. */
  marker: number;
  /** A changelog offset at or before the one the data is current at: replaying from it brings the data to any later marker. */
  offset: number;
  /** Counts of the committed data, so that reopening needs no scan. */
  entries: number;
  bytes: number;
  eventTimers: number;
  processingTimers: number;
}

/** The store directory is held by another live process. */
export class StoreBusyError extends SageError {
  constructor(
    readonly dir: string,
    readonly pid: number,
  ) {
    super("STATE_STORE_BUSY", `the state store ${dir} is held by process ${pid}`, { retriable: true, scope: "job" });
  }
}

/** The store's data file is shorter than its own last page says: cut short from outside. */
export class StoreDamagedError extends SageError {
  constructor(readonly dir: string) {
    super("STATE_STORE_DAMAGED", `the state store ${dir} is damaged (its data file is cut short)`, { retriable: true, scope: "job" });
  }
}

/** True when process `pid` exists (a permission error still means it does). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** The lmdb key of an entry: itself, or for a long one its key group and a hash. */
function diskKey(entry: string): string {
  return entry.length <= LONG_KEY ? entry : `${entry.slice(0, 6)}\u0001${createHash("sha256").update(entry).digest("base64")}`;
}

/** The stored value of an entry: its JSON, or for a long key the entry itself first (a leading NUL, which JSON never starts with). */
function diskValue(entry: string, json: string): string {
  return entry.length <= LONG_KEY ? json : `\u0000${entry.length}|${entry}${json}`;
}

/** The entry and JSON of a stored record. */
function decode(key: string, value: string): ChangelogEntry & { value: string } {
  if (!value.startsWith("\u0000")) return { key, value };
  const bar = value.indexOf("|");
  const length = Number(value.slice(1, bar));
  return { key: value.slice(bar + 1, bar + 1 + length), value: value.slice(bar + 1 + length) };
}

/** Committed state entries, timers and their mark, on disk. */
export class DiskStore {
  private readonly root: RootDatabase<string, string>;
  private readonly entries: Database<string, string>;
  private readonly timerDb: Database<string, string>;
  private readonly meta: Database<string, string>;
  private readonly lockFile: string;

  private constructor(readonly dir: string) {
    this.lockFile = join(dir, "sage.lock");
    this.root = open<string, string>({ path: join(dir, "data"), encoding: "string", maxDbs: 4 });
    const { pageSize, lastPageNumber } = this.root.getStats() as { pageSize: number; lastPageNumber: number };
    if (statSync(join(dir, "data", "data.mdb")).size < (lastPageNumber + 1) * pageSize) {
      void this.root.close();
      throw new StoreDamagedError(dir);
    }
    this.entries = this.root.openDB<string, string>({ name: "entries", encoding: "string" });
    this.timerDb = this.root.openDB<string, string>({ name: "timers", encoding: "string" });
    this.meta = this.root.openDB<string, string>({ name: "meta", encoding: "string" });
  }

  /** Opens (creating) the store in `dir`, taking its lock: `StoreBusyError` when another live process holds it. */
  static open(dir: string): DiskStore {
    mkdirSync(dir, { recursive: true });
    const lockFile = join(dir, "sage.lock");
    try {
      writeFileSync(lockFile, String(process.pid), { flag: "wx" });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      const holder = Number(readFileSync(lockFile, "utf8").trim());
      // A lock left by a process that died (kill -9) is taken over; so is our own.
      if (Number.isInteger(holder) && holder > 0 && holder !== process.pid && alive(holder)) throw new StoreBusyError(dir, holder);
      writeFileSync(lockFile, String(process.pid));
    }
    // Opening is marked until it succeeded: a process that died in it leaves the mark behind.
    const opening = join(dir, "sage.opening");
    if (existsSync(opening)) {
      const pid = Number(readFileSync(opening, "utf8").trim());
      if (pid !== process.pid && !alive(pid)) rmSync(join(dir, "data"), { recursive: true, force: true });
    }
    writeFileSync(opening, String(process.pid));
    const store = new DiskStore(dir);
    unlinkSync(opening);
    return store;
  }

  /** The mark of the committed data, or null (a new or wiped store, or one of another format). */
  mark(): StoreMark | null {
    const text = this.meta.get("mark");
    if (text === undefined) return null;
    const parsed = JSON.parse(text) as StoreMark & { format?: number };
    return parsed.format === FORMAT ? parsed : null;
  }

  /** The committed JSON of a state entry (not a timer), or undefined. */
  get(entry: string): string | undefined {
    const value = this.entries.get(diskKey(entry));
    return value === undefined ? undefined : decode(entry, value).value;
  }

  /** Every committed timer entry. */
  *timers(): IterableIterator<string> {
    for (const { key, value } of this.timerDb.getRange()) yield decode(key, value).key;
  }

  /** Committed state entries (not timers) of key groups `[from, to)`. */
  *range(from: number, to: number): IterableIterator<ChangelogEntry & { value: string }> {
    const start = `${String(Math.max(0, from)).padStart(5, "0")}|`;
    const options = to < 100_000 ? { start, end: `${String(to).padStart(5, "0")}|` } : { start };
    for (const { key, value } of this.entries.getRange(options)) yield decode(key, value);
  }

  /** Writes changes (null deletes) now, in transactions of a bounded size; the mark is left as it is. */
  writeSync(changes: readonly ChangelogEntry[]): void {
    for (let from = 0; from < changes.length; from += RESTORE_CHUNK) {
      this.root.transactionSync(() => {
        for (let i = from; i < Math.min(changes.length, from + RESTORE_CHUNK); i++) this.apply(changes[i]!);
      });
    }
  }

  /** Writes changes and the mark in one transaction on lmdb's write thread; resolves once committed. */
  async write(changes: readonly ChangelogEntry[], mark: StoreMark): Promise<void> {
    await this.root.transaction(() => {
      for (const change of changes) this.apply(change);
      void this.meta.put("mark", JSON.stringify({ format: FORMAT, ...mark }));
    });
  }

  /** Sets the mark now. */
  setMark(mark: StoreMark): void {
    this.meta.putSync("mark", JSON.stringify({ format: FORMAT, ...mark }));
  }

  /** Deletes everything, the mark first (a wipe cut short leaves a store without a mark: rebuilt). */
  wipe(): void {
    this.root.transactionSync(() => {
      this.meta.clearSync();
      this.entries.clearSync();
      this.timerDb.clearSync();
    });
  }

  /** Waits for writes in flight, closes lmdb and releases the lock. */
  async close(): Promise<void> {
    await this.root.close();
    try {
      if (readFileSync(this.lockFile, "utf8").trim() === String(process.pid)) unlinkSync(this.lockFile);
    } catch {
      // already gone
    }
  }

  /** Removes a store directory (closed) and everything in it. */
  static remove(dir: string): void {
    rmSync(dir, { recursive: true, force: true });
  }

  private apply({ key: entry, value }: ChangelogEntry): void {
    const db = entry.startsWith(TIMER_EVENT, 6) || entry.startsWith(TIMER_PROCESSING, 6) ? this.timerDb : this.entries;
    if (value === null) void db.remove(diskKey(entry));
    else void db.put(diskKey(entry), diskValue(entry, value));
  }
}
