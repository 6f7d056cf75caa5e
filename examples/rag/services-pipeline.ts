/**
 * The RAG pipeline with its vector store as a registered service, as SAGE writes it
 * (`env.register_service("vector_db", ...)` and the retriever calling the service): the same chain as
 * `pipeline.ts`, but the retriever takes the store with `ctx.service` instead of being the built-in
 * `retrieve` operator. The store (LanceDB folders opened by path) opens once per worker process and
 * closes when the worker stops; it reads a folder on disk, so every worker sharing that folder (or a
 * copy of it) answers alike.
 */
import {
  definePipeline,
  FileSink,
  FileSource,
  LanceVectorStore,
  MapFunction,
  NonRetryableError,
  type FunctionContext,
  type RecordContext,
  type Retrieved,
} from "sage-temporal";
import { ContextEnhancer, QueryParser, ResponseFormatter, type ParsedQuery, type Question, type RagAnswer } from "./pipeline.js";
import { ANSWER_DECODING } from "./prompt.js";

/** Name the vector store is registered under. */
export const VECTOR_DB = "vector-db";

type Query = ParsedQuery & { embedding: number[] };

/** Top-`k` chunks of the job's index (`--param index=...`) for each query, from the registered store. */
export class ServiceRetriever extends MapFunction<Query, Retrieved<Query>> {
  private store: LanceVectorStore | null = null;
  constructor(readonly k: number) {
    super();
  }
  async open(ctx: FunctionContext): Promise<void> {
    this.store = await ctx.service<LanceVectorStore>(VECTOR_DB);
  }
  close(): void {
    this.store = null; // the worker closes the store itself, once, after every function
  }
  async map(q: Query, ctx: RecordContext): Promise<Retrieved<Query>> {
    const path = ctx.params.index;
    if (!path) throw new NonRetryableError(`${ctx.operatorId}: the job has no "index" parameter`);
    const hits = await (await this.store!.index(path)).search(q.embedding, this.k);
    const { embedding: _drop, ...rest } = q;
    return { ...rest, hits };
  }
}

/** Parameters as `pipeline.ts`: `questions` (JSONL), `index` (LanceDB folder from `sage index`), `output` (JSONL). */
export default definePipeline("rag-services", (env) => {
  env.registerService(VECTOR_DB, () => new LanceVectorStore());
  env
    .fromSource(FileSource.jsonl<Question>(env.param("questions")), { name: "user-queries" })
    .map(new QueryParser(), { name: "query-parser" })
    .embed({ text: (q) => q.query, name: "embedding-generator" })
    .map(new ServiceRetriever(3), { name: "vector-retriever" })
    .map(new ContextEnhancer(), { name: "context-enhancer" })
    .generate({ ...ANSWER_DECODING, name: "llm-generator" })
    .map(new ResponseFormatter(), { name: "response-formatter" })
    .sink(FileSink.jsonl<RagAnswer>(env.param("output")), { name: "response-sink" });
});
