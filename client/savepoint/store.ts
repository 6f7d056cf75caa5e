/**
 * Where savepoints live: outside workflow history and outside Kafka. A store holds savepoints by
 * id, each a set of named files; `DirectorySavepointStore` keeps them under a local directory
 * (`<dir>/<id>/manifest.json`, `<dir>/<id>/state/<uid>.jsonl.gz`). Any blob store fits the same
 * small interface.
 */
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { MANIFEST_FILE } from "./manifest.js";
import { SavepointError } from "./errors.js";

/** A place savepoints are kept. */
export interface SavepointStore {
  /** Where the store is, for messages (a directory, a bucket URL). */
  readonly location: string;
  /** Where savepoint `id` is, for messages and for `--from-savepoint`. */
  pathOf(id: string): string;
  /** Writes one file of savepoint `id` (whole, or not at all). */
  put(id: string, file: string, data: Uint8Array): Promise<void>;
  /** Reads one file of savepoint `id`; a `SavepointError` when it is missing. */
  get(id: string, file: string): Promise<Buffer>;
  /** The ids of the savepoints that have a manifest. */
  list(): Promise<string[]>;
  /** Deletes savepoint `id` and all its files. */
  remove(id: string): Promise<void>;
}

/** Savepoints as directories under `dir`. */
export class DirectorySavepointStore implements SavepointStore {
  readonly location: string;

  constructor(dir: string) {
    this.location = resolve(dir);
  }

  /** The store and id of a savepoint given by its directory or its manifest's path. */
  static fromPath(path: string): { store: DirectorySavepointStore; id: string } {
    const abs = resolve(path);
    const dir = basename(abs) === MANIFEST_FILE ? dirname(abs) : abs;
    return { store: new DirectorySavepointStore(dirname(dir)), id: basename(dir) };
  }

  pathOf(id: string): string {
    return join(this.location, id);
  }

  async put(id: string, file: string, data: Uint8Array): Promise<void> {
    const target = join(this.pathOf(id), file);
    await mkdir(dirname(target), { recursive: true });
    // Written aside and renamed: a reader never sees half a file under its name.
    const partial = `${target}.partial`;
    await writeFile(partial, data);
    await rename(partial, target);
  }

  async get(id: string, file: string): Promise<Buffer> {
    const path = join(this.pathOf(id), file);
    try {
      return await readFile(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") {
        const exists = await stat(this.pathOf(id)).then(
          () => true,
          () => false,
        );
        throw new SavepointError(exists ? `savepoint ${this.pathOf(id)} has no ${file}: it is incomplete or damaged` : `no savepoint at ${this.pathOf(id)}`, {
          cause: err,
        });
      }
      throw err;
    }
  }

  async list(): Promise<string[]> {
    const entries = await readdir(this.location, { withFileTypes: true }).catch(() => []);
    const ids: string[] = [];
    for (const e of entries) {
      if (!e.isDirectory()) continue;
      const has = await stat(join(this.location, e.name, MANIFEST_FILE)).then(
        () => true,
        () => false,
      );
      if (has) ids.push(e.name);
    }
    return ids.sort();
  }

  async remove(id: string): Promise<void> {
    const path = this.pathOf(id);
    const has = await stat(join(path, MANIFEST_FILE)).then(
      () => true,
      () => false,
    );
    if (!has) throw new SavepointError(`no savepoint ${id} in ${this.location}`);
    await rm(path, { recursive: true, force: true });
  }
}
