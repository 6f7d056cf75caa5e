/**
 * `stream-pipeline.ts` with another instruction at the head of the prompt: the changed module of the
 * README's `sage whatif` example. Run against the recorded questions of a `stream-pipeline.ts` job,
 * it shows which answers the new wording changes, and what the new model calls cost, before anything
 * is deployed:
 *   sage whatif rag-stream --base examples/rag/stream-pipeline.ts --module examples/rag/stream-pipeline-reworded.ts
 */
import { definePipeline, KafkaSink, KafkaSource } from "sage-temporal";
import { ragChain, type Question, type RagAnswer } from "./pipeline.js";

const INPUT = process.env.RAG_INPUT_TOPIC ?? "rag-questions";
const OUTPUT = process.env.RAG_OUTPUT_TOPIC ?? "rag-answers";
const GROUP = process.env.RAG_GROUP ?? "rag";

/** The changed instruction: shorter answers, and the source named. */
export const REWORDED_INSTRUCTION =
  "Answer the user's question about Sage in one sentence of at most twelve words, using only these sources, and name the source file.";

export default definePipeline("rag-stream", (env) =>
  ragChain(
    env.fromSource(KafkaSource.topic<Question>(INPUT, { groupId: GROUP, startFrom: "earliest" }), { name: "user-queries" }),
    env.param("index"),
    REWORDED_INSTRUCTION,
  ).sink(KafkaSink.topic<RagAnswer>(OUTPUT, { key: (a) => String(a.id) }), { name: "response-sink" }),
);
