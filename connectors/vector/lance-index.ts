/**
 * The embedded vector store: LanceDB (`@lancedb/lancedb`), one table `chunks` in a folder on disk.
 * Why LanceDB: it is embedded (no server), persists to a folder, searches by cosine distance with a
 * flat scan that is exact for small corpora (and can add an ANN index for large ones), and ships a
 * prebuilt Linux binary on npm.
 */
import type { Hit, VectorIndex } from "../../core/api/llm.js";
import { VectorIndexError } from "../../core/errors.js";

/** LanceDB's native module, loaded on first use (workers without retrieval never load it). */
const lance = () => import("@lancedb/lancedb");

/** Name of the table in every index folder. */
export const CHUNKS_TABLE = "chunks";

/** One chunk to store. */
export interface ChunkRow {
  id: string;
  source: string;
  text: string;
  vector: number[];
}

/** Writes (replaces) the index at `path` with `rows`. */
export async function writeIndex(path: string, rows: readonly ChunkRow[]): Promise<number> {
  if (rows.length === 0) throw new VectorIndexError(`no chunks to write into the vector index at ${path}`);
  const db = await (await lance()).connect(path);
  try {
    const table = await db.createTable(
      CHUNKS_TABLE,
      rows.map((r) => ({ ...r })),
      { mode: "overwrite" },
    );
    const n = await table.countRows();
    table.close();
    return n;
  } finally {
    db.close();
  }
}

/** Opens the index at `path` for search; throws naming the path when there is none. */
export async function openLanceIndex(path: string): Promise<VectorIndex & { size(): Promise<number>; close(): void }> {
  const db = await (await lance()).connect(path);
  const names = await db.tableNames();
  if (!names.includes(CHUNKS_TABLE)) {
    db.close();
    throw new VectorIndexError(`no vector index at ${path} (table "${CHUNKS_TABLE}" missing): build it with \`sage index <docs-folder> --index ${path}\``);
  }
  const table = await db.openTable(CHUNKS_TABLE);
  return {
    async search(vector, k) {
      const rows = (await table
        .vectorSearch([...vector])
        .distanceType("cosine")
        .limit(k)
        .toArray()) as Array<Omit<ChunkRow, "vector"> & { _distance: number }>;
      return rows.map((r): Hit => ({ id: r.id, source: r.source, text: r.text, score: 1 - r._distance }));
    },
    size: () => table.countRows(),
    close() {
      table.close();
      db.close();
    },
  };
}
