/**
 * Micro-benchmark: the on-disk key-value stores the `embedded` state backend could sit on, side by
 * side with a heap Map, over the same entries (state entry keys and small JSON values): batch
 * loads (one write per unit-sized batch, as a unit's changes are written after its commit), single
 * puts, synchronous and asynchronous reads at random, a full scan, reopening, and bytes on disk.
 * The backend's reads are synchronous, so a store whose reads are only asynchronous cannot serve it.
 *
 * Only the chosen store is a dependency; the others are looked up in `--modules DIR` (a
 * `node_modules` where they were installed for the comparison), and a store found in neither is
 * reported as not installed.
 *
 *   npx tsx bench/state-stores.ts [--entries 1000000] [--batch 2000] [--stores lmdb,lmdb-nosync,lmdb-async,classic-level,rocksdb,map]
 *     [--modules /tmp/stores/node_modules]
 */
import { createRequire } from "node:module";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { entryKey } from "../activities/state/entry-key.js";
import { machineLine, printTable, saveResult } from "./machine.js";

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]! : fallback;
}
const ENTRIES = Number(arg("entries", "1000000"));
const BATCH = Number(arg("batch", "2000"));
const STORES = arg("stores", "lmdb,lmdb-nosync,lmdb-async,classic-level,rocksdb,map").split(",");
const MODULES = arg("modules", "");

/** What every candidate offers the benchmark; a missing `getSync` means reads are asynchronous only. */
interface Candidate {
  /** Package and version, and the durability the writes ran with. */
  label: string;
  writeBatch(entries: ReadonlyArray<readonly [string, string]>): Promise<void>;
  /** Starts a single-entry write; `settle` waits for every one started. */
  put(key: string, value: string): Promise<unknown> | undefined;
  settle(): Promise<void>;
  getSync?(key: string): string | undefined;
  getAsync?(key: string): Promise<string | undefined>;
  scan(): Promise<number>;
  reopen(): Promise<void>;
  close(): Promise<void>;
}

/** The minimal shapes of the packages' APIs used here. */
interface LmdbDatabase {
  get(key: string): string | undefined;
  put(key: string, value: string): Promise<boolean>;
  putSync(key: string, value: string): boolean;
  transactionSync(fn: () => void): void;
  getRange(options?: object): Iterable<{ key: unknown; value: string }>;
  close(): Promise<void>;
}
interface LevelDatabase {
  open(): Promise<void>;
  close(): Promise<void>;
  get(key: string): Promise<string | undefined>;
  getSync?(key: string): string | undefined;
  _getManySync?(keys: string[], options: object): Array<Buffer | undefined>;
  put(key: string, value: string): Promise<void>;
  batch(ops: Array<{ type: "put"; key: string; value: string }>): Promise<void>;
  iterator(): AsyncIterable<[string, string]>;
}

const moduleRequire = createRequire(MODULES ? join(MODULES, "..", "bench.js") : import.meta.url);
const ownRequire = createRequire(import.meta.url);

/** The version in the package.json above `file` that names `name` (some packages do not export their package.json). */
function versionOf(file: string, name: string): string {
  for (let dir = dirname(file); dir !== dirname(dir); dir = dirname(dir)) {
    const manifest = join(dir, "package.json");
    if (!existsSync(manifest)) continue;
    const pkg = JSON.parse(readFileSync(manifest, "utf8")) as { name?: string; version?: string };
    if (pkg.name === name) return pkg.version ?? "?";
  }
  return "?";
}

/** Loads `name` from the project, else from `--modules`. */
function load<T>(name: string): { module: T; version: string } | null {
  for (const req of [ownRequire, moduleRequire]) {
    try {
      const module = req(name) as T;
      return { module, version: versionOf(req.resolve(name), name) };
    } catch {
      // try the next place
    }
  }
  return null;
}

/**
 * lmdb three ways: a synchronous transaction per batch flushed to disk (the default sync mode,
 * overlapping the flush with the next transaction), the same without any flush (`noSync`), and
 * asynchronous writes pipelined on lmdb's write thread (the caller does not wait for each batch).
 */
function lmdbCandidate(dir: string, mode: "sync" | "nosync" | "async"): Candidate | null {
  const found = load<{ open(options: object): LmdbDatabase }>("lmdb");
  if (!found) return null;
  const open = () => found.module.open({ path: dir, encoding: "string", ...(mode === "nosync" ? { noSync: true } : {}) });
  let db = open();
  let last: Promise<unknown> = Promise.resolve();
  const labels = { sync: "sync txn per batch, fsync", nosync: "sync txn per batch, noSync", async: "async txns, pipelined, fsync" };
  return {
    label: `lmdb ${found.version} (${labels[mode]})`,
    writeBatch: (entries) => {
      if (mode === "async") {
        for (const [k, v] of entries) last = db.put(k, v);
        return Promise.resolve();
      }
      db.transactionSync(() => {
        for (const [k, v] of entries) db.putSync(k, v);
      });
      return Promise.resolve();
    },
    put: (k, v) => (last = db.put(k, v)),
    settle: () => last.then(() => undefined),
    getSync: (k) => db.get(k),
    scan: () => {
      let n = 0;
      for (const _ of db.getRange()) n++;
      return Promise.resolve(n);
    },
    reopen: async () => {
      await db.close();
      db = open();
      db.get("");
    },
    close: () => db.close(),
  };
}

function levelCandidate(name: "classic-level" | "@nxtedition/rocksdb", dir: string): Candidate | null {
  const found = load<Record<string, new (location: string, options?: object) => LevelDatabase>>(name);
  if (!found) return null;
  const make = () => new (name === "classic-level" ? found.module.ClassicLevel! : found.module.RocksLevel!)(dir, { valueEncoding: "utf8" });
  let db = make();
  const pending: Array<Promise<unknown>> = [];
  // classic-level 3 has a public getSync; the rocksdb binding only a private synchronous getMany.
  const getSync = (k: string): string | undefined => {
    if (db.getSync) return db.getSync(k);
    return db._getManySync!([k], {})[0]?.toString("utf8");
  };
  return {
    label: `${name} ${found.version} (no fsync: the default)`,
    writeBatch: (entries) => db.batch(entries.map(([key, value]) => ({ type: "put", key, value }))),
    put: (k, v) => {
      const p = db.put(k, v);
      pending.push(p);
      return p;
    },
    settle: async () => {
      await Promise.all(pending);
      pending.length = 0;
    },
    ...(db.getSync || db._getManySync ? { getSync } : {}),
    getAsync: (k) => db.get(k),
    scan: async () => {
      let n = 0;
      for await (const _ of db.iterator()) n++;
      return n;
    },
    reopen: async () => {
      await db.close();
      db = make();
      await db.open();
    },
    close: () => db.close(),
  };
}

function mapCandidate(): Candidate {
  let map = new Map<string, string>();
  return {
    label: "Map (heap; the memory backend's baseline)",
    writeBatch: (entries) => {
      for (const [k, v] of entries) map.set(k, v);
      return Promise.resolve();
    },
    put: (k, v) => {
      map.set(k, v);
      return undefined;
    },
    settle: () => Promise.resolve(),
    getSync: (k) => map.get(k),
    scan: () => {
      let n = 0;
      for (const _ of map) n++;
      return Promise.resolve(n);
    },
    reopen: () => {
      map = new Map(map);
      return Promise.resolve();
    },
    close: () => {
      map.clear();
      return Promise.resolve();
    },
  };
}

/** Entry `i`: a window count of one key, as the window operator stores it. */
function entry(i: number): readonly [string, string] {
  const key = JSON.stringify(`svc-${i}`);
  return [entryKey(i % 128, "w0", String(1_700_000_000_000 + (i % 6) * 10_000), key), JSON.stringify({ count: i % 977, sum: (i * 7.31) % 10_000 })];
}

function dirBytes(dir: string): number {
  let total = 0;
  for (const name of readdirSync(dir, { recursive: true }) as string[]) {
    const s = statSync(join(dir, name));
    // Blocks, not the apparent size: lmdb's file is sparse up to its map size.
    if (s.isFile()) total += s.blocks * 512;
  }
  return total;
}

/** A permutation of `[0, n)` (fixed seed), so reads hit the whole key space in random order. */
function shuffled(n: number): Uint32Array {
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  let seed = 16;
  for (let i = n - 1; i > 0; i--) {
    seed = (seed * 1_103_515_245 + 12_345) >>> 0;
    const j = seed % (i + 1);
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  return order;
}

interface Figures {
  store: string;
  installed: boolean;
  batchPerSec?: number;
  putPerSec?: number;
  getSyncPerSec?: number | null;
  getAsyncPerSec?: number | null;
  scanPerSec?: number;
  reopenMs?: number;
  diskMb?: number;
}

const perSec = (n: number, ms: number): number => Math.round((n * 1000) / ms);

async function measure(name: string, order: Uint32Array): Promise<Figures> {
  const dir = mkdtempSync(join(tmpdir(), `state-store-${name.replace(/\W/g, "")}-`));
  try {
    const c =
      name === "lmdb" || name === "lmdb-nosync" || name === "lmdb-async"
        ? lmdbCandidate(dir, name === "lmdb" ? "sync" : name === "lmdb-nosync" ? "nosync" : "async")
        : name === "classic-level"
          ? levelCandidate("classic-level", dir)
          : name === "rocksdb"
            ? levelCandidate("@nxtedition/rocksdb", dir)
            : mapCandidate();
    if (!c) return { store: name, installed: false };
    await c.reopen();
    const figures: Figures = { store: c.label, installed: true };
    let t = performance.now();
    for (let from = 0; from < ENTRIES; from += BATCH) {
      const batch: Array<readonly [string, string]> = [];
      for (let i = from; i < Math.min(ENTRIES, from + BATCH); i++) batch.push(entry(i));
      await c.writeBatch(batch);
    }
    await c.settle();
    figures.batchPerSec = perSec(ENTRIES, performance.now() - t);
    // Single puts overwrite the same keys with new values, in random order.
    t = performance.now();
    for (let i = 0; i < ENTRIES; i++) {
      const [k] = entry(order[i]!);
      void c.put(k, `{"count":${i}}`);
      if ((i & 0xffff) === 0xffff) await c.settle();
    }
    await c.settle();
    figures.putPerSec = perSec(ENTRIES, performance.now() - t);
    const keys = Array.from(order, (i) => entry(i)[0]);
    let misses = 0;
    if (c.getSync) {
      t = performance.now();
      for (const k of keys) if (c.getSync(k) === undefined) misses++;
      figures.getSyncPerSec = perSec(ENTRIES, performance.now() - t);
    } else figures.getSyncPerSec = null;
    if (c.getAsync) {
      t = performance.now();
      for (const k of keys) if ((await c.getAsync(k)) === undefined) misses++;
      figures.getAsyncPerSec = perSec(ENTRIES, performance.now() - t);
    } else figures.getAsyncPerSec = null;
    if (misses > 0) throw new Error(`${name}: ${misses} reads found nothing`);
    t = performance.now();
    const scanned = await c.scan();
    figures.scanPerSec = perSec(scanned, performance.now() - t);
    if (scanned !== ENTRIES) throw new Error(`${name}: the scan saw ${scanned} entries, not ${ENTRIES}`);
    t = performance.now();
    await c.reopen();
    figures.reopenMs = Math.round(performance.now() - t);
    await c.close();
    figures.diskMb = name === "map" ? 0 : Math.round(dirBytes(dir) / 1e5) / 10;
    return figures;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const fmt = (n: number | null | undefined): string => (n === null || n === undefined ? "-" : n.toLocaleString("en-US"));

async function main(): Promise<void> {
  const load = (): string =>
    loadavg()
      .map((l) => l.toFixed(1))
      .join(" ");
  console.log(`state stores: ${ENTRIES.toLocaleString("en-US")} entries, batches of ${BATCH}; ${machineLine()}; load average ${load()}`);
  const order = shuffled(ENTRIES);
  const rows: Figures[] = [];
  for (const name of STORES) {
    const f = await measure(name, order);
    rows.push(f);
    console.log(f.installed ? `  ${f.store}: done (load average ${load()})` : `  ${name}: not installed (pass --modules DIR)`);
  }
  printTable(
    ["store", "batch put/s", "single put/s", "sync get/s", "async get/s", "scan/s", "reopen ms", "disk MB"],
    rows
      .filter((r) => r.installed)
      .map((r) => [
        r.store,
        fmt(r.batchPerSec),
        fmt(r.putPerSec),
        fmt(r.getSyncPerSec),
        fmt(r.getAsyncPerSec),
        fmt(r.scanPerSec),
        fmt(r.reopenMs),
        fmt(r.diskMb),
      ]),
  );
  if (ENTRIES >= 1_000_000) console.log(`saved ${saveResult("state-stores", { entries: ENTRIES, batch: BATCH, rows })}`);
}

await main();
