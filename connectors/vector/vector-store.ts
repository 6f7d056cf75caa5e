/**
 * The embedded vector store as a worker service: LanceDB index folders opened for search by path,
 * each once per process and closed at shutdown. The built-in `llm` service keeps one; a pipeline may
 * register its own (`env.registerService("vectors", () => new LanceVectorStore())`).
 */
import type { VectorIndex } from "../../core/api/llm.js";
import { openLanceIndex } from "./lance-index.js";

/** LanceDB indexes by folder, opened on first search and closed with the store. */
export class LanceVectorStore {
  private readonly indexes = new Map<string, ReturnType<typeof openLanceIndex>>();

  /** The index persisted at `path` (built by `sage index`), opened once; concurrent first calls share the open. */
  index(path: string): Promise<VectorIndex> {
    let index = this.indexes.get(path);
    if (!index) {
      index = openLanceIndex(path);
      this.indexes.set(path, index);
      index.catch(() => this.indexes.delete(path));
    }
    return index;
  }

  /** Closes every opened index. */
  async close(): Promise<void> {
    for (const index of this.indexes.values()) (await index.catch(() => null))?.close();
    this.indexes.clear();
  }
}
