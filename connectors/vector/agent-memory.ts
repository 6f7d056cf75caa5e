/**
 * An agent's memory that every worker process on a host shares: turns remembered with their
 * embedding under a key (a conversation, a user), recalled by cosine similarity. Backed by one LMDB
 * file (`lmdb`): LMDB serialises writers across processes with a lock in shared memory and gives
 * readers consistent snapshots, so two workers remembering at once, or a retried activity
 * remembering again, leave one memory per id (a write only where the id is absent, decided inside
 * the write transaction). Not the LanceDB index of `vector-store.ts`: two processes that
 * `mergeInsert` the same ids into one LanceDB 0.31 table at once both insert (measured: 39 rows for
 * 31 ids), and each small write there is a new table version. Recall scans the key's memories
 * (exact, fine for the turns of a conversation). The file must be on a local disk: workers on other
 * hosts do not see it.
 */
import { mkdirSync } from "node:fs";
import { dirname, isAbsolute, join, resolve } from "node:path";
import { open, type RootDatabase } from "lmdb";
import type { ServiceFactory } from "../../core/api/services.js";
import { AgentMemoryError } from "../../core/errors.js";

/** One memory to keep. */
export interface Memory {
  /** What it belongs to (a conversation, a user): recall looks under one key. */
  key: string;
  /** Its id within the key; remembering an id again keeps the first (retries, two workers). */
  id: string;
  /** Its order within the key (a turn number): recall can ask for memories before one. */
  seq: number;
  text: string;
  /** Its embedding; every memory of a key has the same dimension. */
  vector: readonly number[];
  /** Small facts to keep with it (a role, a source). */
  meta?: Readonly<Record<string, string | number | boolean>>;
}

/** A memory as kept, without its vector. */
export interface KeptMemory {
  key: string;
  id: string;
  seq: number;
  text: string;
  meta?: Readonly<Record<string, string | number | boolean>>;
  /** The worker that remembered it (its identity, `sage-worker@<pid>` unless set). */
  writer: string;
}

/** A memory recalled, with its similarity to the query. */
export interface RecalledMemory extends KeptMemory {
  /** Cosine similarity to the query, in [-1, 1]. */
  score: number;
}

/** What to recall: the `k` memories of `key` nearest to `vector`, only those with `seq < before` when given. */
export interface RecallQuery {
  key: string;
  vector: readonly number[];
  k: number;
  before?: number;
}

/** A memory as stored: the vector as float32 bytes. */
interface StoredMemory {
  id: string;
  seq: number;
  text: string;
  vector: Uint8Array;
  meta?: Readonly<Record<string, string | number | boolean>>;
  writer: string;
}

/** Separates the key from the id in an entry's key; a memory key may not contain it. */
const SEPARATOR = "\u001f";
/** Bytes of key plus id (UTF-8) a memory may use: LMDB keys stop at 1,978 bytes. */
const MAX_ENTRY_KEY_BYTES = 1000;

/** The memories of one LMDB file, shared by every process that opens the same path. */
export class AgentMemory {
  private constructor(
    private readonly db: RootDatabase<StoredMemory, string>,
    /** The LMDB file. */
    readonly path: string,
    private readonly writer: string,
  ) {}

  /** Opens (creating) the memory file at `path`; memories this process remembers name `writer`. */
  static open(path: string, writer = `pid ${process.pid}`): AgentMemory {
    mkdirSync(dirname(path), { recursive: true });
    return new AgentMemory(open<StoredMemory, string>({ path, compression: false }), path, writer);
  }

  /** Keeps `memory` unless its id is already kept under its key: true when this call stored it. */
  async remember(memory: Memory): Promise<boolean> {
    const entry = entryKey(memory.key, memory.id);
    this.checkDimension(memory.key, memory.vector.length);
    const stored: StoredMemory = {
      id: memory.id,
      seq: memory.seq,
      text: memory.text,
      vector: new Uint8Array(Float32Array.from(memory.vector).buffer),
      ...(memory.meta ? { meta: memory.meta } : {}),
      writer: this.writer,
    };
    // Decided in the write transaction, which LMDB runs one at a time across every process.
    return this.db.ifNoExists(entry, () => void this.db.put(entry, stored));
  }

  /** The `k` memories of `query.key` most similar to `query.vector`, best first (ties: the earlier seq). */
  recall(query: RecallQuery): Promise<RecalledMemory[]> {
    const norm = Math.hypot(...query.vector);
    // Another process may have written since this process last read: read the newest snapshot.
    this.db.resetReadTxn();
    const found: RecalledMemory[] = [];
    for (const { value } of this.db.getRange(rangeOf(query.key))) {
      if (query.before !== undefined && value.seq >= query.before) continue;
      const vector = vectorOf(value);
      if (vector.length !== query.vector.length) {
        return Promise.reject(
          new AgentMemoryError(`recall under "${query.key}": the query has ${query.vector.length} dimensions, its memories ${vector.length}`),
        );
      }
      const { vector: _bytes, ...rest } = value;
      found.push({ key: query.key, ...rest, score: cosine(query.vector, norm, vector) });
    }
    found.sort((a, b) => b.score - a.score || a.seq - b.seq || (a.id < b.id ? -1 : 1));
    return Promise.resolve(found.slice(0, query.k));
  }

  /** Every memory of `key`, by seq (then id). */
  memories(key: string): KeptMemory[] {
    this.db.resetReadTxn();
    const kept: KeptMemory[] = [];
    for (const { value } of this.db.getRange(rangeOf(key))) {
      const { vector: _bytes, ...rest } = value;
      kept.push({ key, ...rest });
    }
    return kept.sort((a, b) => a.seq - b.seq || (a.id < b.id ? -1 : 1));
  }

  /** How many memories `key` holds (every key's when none is given). */
  count(key?: string): number {
    this.db.resetReadTxn();
    return key === undefined ? this.db.getCount() : this.db.getCount(rangeOf(key));
  }

  /** Closes this process's handle (the file and other processes' memories stay). */
  close(): Promise<void> {
    return this.db.close();
  }

  private checkDimension(key: string, dimension: number): void {
    for (const { value } of this.db.getRange({ ...rangeOf(key), limit: 1 })) {
      const stored = value.vector.byteLength / 4;
      if (stored !== dimension) throw new AgentMemoryError(`memory under "${key}": a vector of ${dimension} dimensions, its memories have ${stored}`);
    }
  }
}

/** Where a registered agent memory keeps its file, and as what. */
export interface AgentMemoryOptions {
  /** The LMDB file; relative to the worker's data dir. Default: `agent-memory/<service name>.mdb` there. */
  path?: string;
}

/**
 * The agent memory as a service (`env.registerService("memory", agentMemory())`): opened once per
 * worker process (or stage thread) on the same file, so every worker whose data dir (or `path`)
 * points at it shares the memories.
 */
export function agentMemory(options: AgentMemoryOptions = {}): ServiceFactory<AgentMemory> {
  return (ctx) => {
    const path = options.path ?? join("agent-memory", `${ctx.name}.mdb`);
    return AgentMemory.open(isAbsolute(path) ? path : resolve(ctx.dataDir, path), ctx.worker.identity);
  };
}

function entryKey(key: string, id: string): string {
  if (key.includes(SEPARATOR)) throw new AgentMemoryError(`memory key ${JSON.stringify(key)} contains U+001F`);
  const entry = `${key}${SEPARATOR}${id}`;
  if (Buffer.byteLength(entry) > MAX_ENTRY_KEY_BYTES)
    throw new AgentMemoryError(`memory key and id of ${Buffer.byteLength(entry)} bytes: at most ${MAX_ENTRY_KEY_BYTES}`);
  return entry;
}

/** Every entry of `key`: those that start with the key and the separator. */
function rangeOf(key: string): { start: string; end: string } {
  if (key.includes(SEPARATOR)) throw new AgentMemoryError(`memory key ${JSON.stringify(key)} contains U+001F`);
  return { start: `${key}${SEPARATOR}`, end: `${key}\u0020` };
}

function vectorOf(m: StoredMemory): Float32Array {
  // A copy: the bytes LMDB hands out need not be 4-byte aligned.
  return new Float32Array(Uint8Array.from(m.vector).buffer);
}

function cosine(query: readonly number[], queryNorm: number, vector: Float32Array): number {
  let dot = 0;
  let norm = 0;
  for (let i = 0; i < vector.length; i++) {
    dot += query[i]! * vector[i]!;
    norm += vector[i]! * vector[i]!;
  }
  return queryNorm === 0 || norm === 0 ? 0 : dot / (queryNorm * Math.sqrt(norm));
}
