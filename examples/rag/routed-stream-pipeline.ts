/**
 * A routed RAG job over Kafka: questions arrive on a topic, a router sends those that name a
 * known Sage topic through the RAG chain of `pipeline.ts` (retrieval + generation on the local
 * models) and the others to a fixed answer; both branches' answers leave on one output topic,
 * tagged with their branch. Used by `routed-lineage.test.ts` (lineage of every answer).
 *   RAG_INPUT_TOPIC (default rag-questions), RAG_OUTPUT_TOPIC (rag-answers), RAG_GROUP (rag);
 *   job parameter `index` (the LanceDB folder from `sage index`).
 */
import { definePipeline, KafkaSink, KafkaSource } from "sage-temporal";
import { ragChain, type Question, type RagAnswer } from "./pipeline.js";

/** An answer and the branch of the router that gave it. */
export interface RoutedAnswer extends RagAnswer {
  branch: "sage" | "off-topic";
}

/** A question that names one of these is about Sage (the corpus's topics). */
const KNOWN_TOPIC = /\b(temporal|kafka|checkpoint|model|activity|record|operator|batch|429)/i;

/** The router's rule: `sage` for a question naming a known topic, anything else to the `otherwise` branch. */
export function branchOf(q: Question): string {
  return typeof q.question === "string" && KNOWN_TOPIC.test(q.question) ? "sage" : "off-topic";
}

/** What the off-topic branch answers, without a model call. */
export const OFF_TOPIC_ANSWER = "I can only answer questions about Sage.";

export default definePipeline("rag-routed", (env) => {
  const input = process.env.RAG_INPUT_TOPIC ?? "rag-questions";
  const output = process.env.RAG_OUTPUT_TOPIC ?? "rag-answers";
  const group = process.env.RAG_GROUP ?? "rag";
  env
    .fromSource(KafkaSource.topic<Question>(input, { groupId: group, startFrom: "earliest" }), { name: "user-queries" })
    .route<RoutedAnswer>([["sage", (s) => ragChain(s, env.param("index")).map((a): RoutedAnswer => ({ ...a, branch: "sage" }), { name: "sage-answer" })]], {
      name: "topic-router",
      by: branchOf,
      otherwise: (s) =>
        s.map((q): RoutedAnswer => ({ id: q.id, question: q.question, answer: OFF_TOPIC_ANSWER, sources: [], hits: [], branch: "off-topic" }), {
          name: "off-topic-answer",
        }),
    })
    .sink(KafkaSink.topic<RoutedAnswer>(output, { key: (a) => String(a.id) }), { name: "response-sink" });
});
