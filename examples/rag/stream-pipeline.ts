/**
 * The same RAG chain as `pipeline.ts`, fed from Kafka: questions arrive on a topic, answers leave on
 * another, exactly once per batch. A streaming job: it runs until `sage stop`.
 *   RAG_INPUT_TOPIC (default rag-questions), RAG_OUTPUT_TOPIC (rag-answers), RAG_GROUP (rag);
 *   job parameter `index` (the LanceDB folder from `sage index`).
 */
import { definePipeline, KafkaSink, KafkaSource } from "sage-temporal";
import { ragChain, type Question, type RagAnswer } from "./pipeline.js";

const INPUT = process.env.RAG_INPUT_TOPIC ?? "rag-questions";
const OUTPUT = process.env.RAG_OUTPUT_TOPIC ?? "rag-answers";
const GROUP = process.env.RAG_GROUP ?? "rag";

export default definePipeline("rag-stream", (env) =>
  ragChain(env.fromSource(KafkaSource.topic<Question>(INPUT, { groupId: GROUP, startFrom: "earliest" }), { name: "user-queries" }), env.param("index")).sink(
    KafkaSink.topic<RagAnswer>(OUTPUT, { key: (a) => String(a.id) }),
    { name: "response-sink" },
  ),
);
