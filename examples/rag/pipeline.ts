/**
 * The SAGE Core RAG pipeline, for real on local models:
 * query-parser -> embedding-generator -> vector-retriever -> context-enhancer -> llm-generator
 * -> response-formatter -> response-sink. Every operator is stateless, so the whole chain fuses into
 * one stage: one activity per split of questions, one embedding request per micro-batch.
 */
import {
  definePipeline,
  FileSink,
  FileSource,
  MapFunction,
  NonRetryableError,
  type ChatMessage,
  type DataStream,
  type Generated,
  type Hit,
  type Retrieved,
  type StringOrParam,
} from "sage-temporal";

/** A question from the input file (JSON Lines). */
export interface Question {
  id: number;
  question: string;
}
/** A question made ready for search. */
export interface ParsedQuery {
  id: number;
  question: string;
  query: string;
}
/** What the response sink writes. */
export interface RagAnswer {
  id: number;
  question: string;
  answer: string;
  /** Documents the answer was grounded on, best first. */
  sources: string[];
  hits: Array<{ id: string; source: string; score: number }>;
}

/** Normalises whitespace; an empty question is that record's error (dead letter). */
export class QueryParser extends MapFunction<Question, ParsedQuery> {
  map(q: Question): ParsedQuery {
    const query = typeof q.question === "string" ? q.question.replace(/\s+/g, " ").trim() : "";
    if (query === "") throw new NonRetryableError(`query-parser: question ${JSON.stringify(q.id)} has no text`);
    return { id: q.id, question: q.question, query };
  }
}

/** Puts the retrieved passages, numbered and with their sources, in front of the question. */
export class ContextEnhancer extends MapFunction<Retrieved<ParsedQuery & { embedding: number[] }>, ParsedQuery & { hits: Hit[]; messages: ChatMessage[] }> {
  map(r: Retrieved<ParsedQuery & { embedding: number[] }>) {
    const context = r.hits.map((h, i) => `[${i + 1}] (${h.source}) ${h.text}`).join("\n\n");
    const messages: ChatMessage[] = [
      { role: "system", content: "Answer the question in one or two sentences, using only the context." },
      { role: "user", content: `Context:\n${context}\n\nQuestion: ${r.query}` },
    ];
    return { id: r.id, question: r.question, query: r.query, hits: r.hits, messages };
  }
}

/** Keeps the answer, its sources and the retrieval scores; drops the prompt. */
export class ResponseFormatter extends MapFunction<Generated<ParsedQuery & { hits: Hit[]; messages: ChatMessage[] }>, RagAnswer> {
  map(r: Generated<ParsedQuery & { hits: Hit[]; messages: ChatMessage[] }>): RagAnswer {
    return {
      id: r.id,
      question: r.question,
      answer: r.answer.trim(),
      sources: [...new Set(r.hits.map((h) => h.source))],
      hits: r.hits.map((h) => ({ id: h.id, source: h.source, score: Math.round(h.score * 1000) / 1000 })),
    };
  }
}

/** The chain from questions to answers, whatever the source and sink (files here, Kafka in `stream-pipeline.ts`). */
export function ragChain(questions: DataStream<Question>, index: StringOrParam): DataStream<RagAnswer> {
  return questions
    .map(new QueryParser(), { name: "query-parser" })
    .embed({ text: (q) => q.query, name: "embedding-generator" })
    .retrieve({ index, k: 3, name: "vector-retriever" })
    .map(new ContextEnhancer(), { name: "context-enhancer" })
    .generate({ maxTokens: 48, name: "llm-generator" })
    .map(new ResponseFormatter(), { name: "response-formatter" });
}

/** Parameters: `questions` (JSONL), `index` (LanceDB folder from `sage index`), `output` (JSONL). */
export default definePipeline("rag", (env) =>
  ragChain(env.fromSource(FileSource.jsonl<Question>(env.param("questions")), { name: "user-queries" }), env.param("index")).sink(
    FileSink.jsonl<RagAnswer>(env.param("output")),
    { name: "response-sink" },
  ),
);
