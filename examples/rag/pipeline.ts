/**
 * The SAGE Core RAG pipeline, for real on local models:
 * query-parser -> embedding-generator -> vector-retriever -> context-enhancer -> llm-generator
 * -> response-formatter -> response-sink. Every operator is stateless, so the whole chain fuses into
 * one stage: one activity per split of questions, one embedding request per micro-batch. How the
 * model is asked, and how much of its answer is kept, is in `prompt.ts`.
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
import { ANSWER_DECODING, ANSWER_INSTRUCTION, firstSentences, PROMPT_SOURCES, sourcesPrompt } from "./prompt.js";

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
  /** Documents the answer was grounded on (those in the prompt), best first. */
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

/** Puts the best retrieved passages, numbered and with their sources, beside the question (`prompt.ts`), under `instruction`. */
export class ContextEnhancer extends MapFunction<Retrieved<ParsedQuery & { embedding: number[] }>, ParsedQuery & { hits: Hit[]; messages: ChatMessage[] }> {
  constructor(readonly instruction = ANSWER_INSTRUCTION) {
    super();
  }
  map(r: Retrieved<ParsedQuery & { embedding: number[] }>) {
    return { id: r.id, question: r.question, query: r.query, hits: r.hits, messages: sourcesPrompt(r.query, r.hits, this.instruction) };
  }
}

/** Keeps one or two sentences of the answer, its sources and the retrieval scores; drops the prompt. */
export class ResponseFormatter extends MapFunction<Generated<ParsedQuery & { hits: Hit[]; messages: ChatMessage[] }>, RagAnswer> {
  map(r: Generated<ParsedQuery & { hits: Hit[]; messages: ChatMessage[] }>): RagAnswer {
    return {
      id: r.id,
      question: r.question,
      answer: firstSentences(r.answer),
      sources: [...new Set(r.hits.slice(0, PROMPT_SOURCES).map((h) => h.source))],
      hits: r.hits.map((h) => ({ id: h.id, source: h.source, score: Math.round(h.score * 1000) / 1000 })),
    };
  }
}

/** The chain from questions to answers, whatever the source and sink (files here, Kafka in `stream-pipeline.ts`); `instruction` heads the prompt. */
export function ragChain(questions: DataStream<Question>, index: StringOrParam, instruction = ANSWER_INSTRUCTION): DataStream<RagAnswer> {
  return questions
    .map(new QueryParser(), { name: "query-parser" })
    .embed({ text: (q) => q.query, name: "embedding-generator" })
    .retrieve({ index, k: 3, name: "vector-retriever" })
    .map(new ContextEnhancer(instruction), { name: "context-enhancer" })
    .generate({ ...ANSWER_DECODING, name: "llm-generator" })
    .map(new ResponseFormatter(), { name: "response-formatter" });
}

/** Parameters: `questions` (JSONL), `index` (LanceDB folder from `sage index`), `output` (JSONL). */
export default definePipeline("rag", (env) =>
  ragChain(env.fromSource(FileSource.jsonl<Question>(env.param("questions")), { name: "user-queries" }), env.param("index")).sink(
    FileSink.jsonl<RagAnswer>(env.param("output")),
    { name: "response-sink" },
  ),
);
