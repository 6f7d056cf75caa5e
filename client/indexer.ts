/**
 * `sage index`: runs the indexing pipeline as a Temporal job (a worker in this process), then loads
 * the embedded chunks into the LanceDB index folder.
 */
import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Logger } from "pino";
import type { SageConfig } from "../core/config/schema.js";
import { VectorIndexError } from "../core/errors.js";
import type { JobResult } from "../core/plan/job.js";
import { indexPipeline } from "../connectors/vector/index-pipeline.js";
import { CHUNKS_TABLE, writeIndex, type ChunkRow } from "../connectors/vector/lance-index.js";
import { createSageWorker } from "../worker/sage-worker.js";
import { SageClient } from "./sage-client.js";

/** What an indexing run did. */
export interface IndexReport {
  index: string;
  chunks: number;
  documents: number;
  job: JobResult;
  workflowId: string;
  /** The indexing job's run (for its Web UI link). */
  runId: string;
}

/** True when `index` holds a LanceDB chunks table. */
export function indexExists(index: string): boolean {
  return existsSync(join(index, `${CHUNKS_TABLE}.lance`));
}

/** Indexes the documents under `docs` into the LanceDB folder `index` (replacing what was there). */
export async function indexDocuments(options: { docs: string; index: string; config: SageConfig; logger: Logger; jobId?: string }): Promise<IndexReport> {
  const { config, logger } = options;
  const docs = resolve(options.docs);
  const index = resolve(options.index);
  const out = join(resolve(config["data-dir"]), "index-jobs", `${Date.now().toString(36)}.chunks.jsonl`);
  const worker = await createSageWorker({ pipeline: indexPipeline, config, logger });
  const running = worker.run();
  const client = await SageClient.connect({ config });
  try {
    const job = await client.submit(indexPipeline, { params: { docs, out }, ...(options.jobId ? { jobId: options.jobId } : {}) });
    const result = await job.result();
    if (result.deadLetters > 0)
      throw new VectorIndexError(`indexing ${docs}: ${result.deadLetters} chunk(s) failed (see ${result.deadLetterPath}); the index was not written`);
    const published = result.outputs.chunks!;
    const rows = readFileSync(published, "utf8")
      .split("\n")
      .filter((l) => l !== "")
      .map((l) => {
        const c = JSON.parse(l) as { id: string; source: string; text: string; embedding: number[] };
        return { id: c.id, source: c.source, text: c.text, vector: c.embedding } satisfies ChunkRow;
      });
    const chunks = await writeIndex(index, rows);
    return { index, chunks, documents: new Set(rows.map((r) => r.source)).size, job: result, workflowId: job.workflowId, runId: job.runId };
  } finally {
    await client.close();
    await worker.shutdown();
    await running.catch(() => undefined);
  }
}
