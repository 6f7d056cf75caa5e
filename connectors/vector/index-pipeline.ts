/**
 * The indexing pipeline behind `sage index <docs-folder>`: a bounded job that reads the folder's
 * documents (one split per file), chunks them, embeds the chunks (one request per micro-batch) and
 * writes them to a JSONL file; `indexDocuments` then loads that file into the LanceDB index.
 */
import { definePipeline } from "../../core/api/pipeline.js";
import { FileSink } from "../../core/api/connectors.js";
import { chunkDocument, DocumentsSource } from "./docs-source.js";

/** Name of the indexing pipeline (its task queue is `sage-sage-index` unless configured). */
export const INDEX_PIPELINE = "sage-index";

/** Job parameters: `docs` (folder), `out` (chunks with embeddings, JSONL). */
export const indexPipeline = definePipeline(INDEX_PIPELINE, (env) =>
  env
    .fromSource(new DocumentsSource(), { name: "documents" })
    .flatMap((doc) => chunkDocument(doc), { name: "chunker" })
    .embed({ text: (c) => c.text, batchSize: 32, name: "chunk-embedder" })
    .sink(FileSink.jsonl(env.param("out")), { name: "chunks" }),
);
