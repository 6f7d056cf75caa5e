/**
 * The SAGE Core intelligent agent pipeline on a real model: the intent classifier embeds each
 * message (one request per micro-batch) and picks the intent of the nearest labelled examples
 * (`intents.ts`); the router sends it to the question / command / conversation branch, and one
 * aggregator sink gathers every answer. (The tiny local chat model is a poor classifier, so the
 * default is embedding similarity; `classify({ by: "chat", ... })` is the other way.)
 */
import { definePipeline, FileSink, FileSource } from "sage-temporal";
import { INTENT_EXAMPLES } from "./intents.js";

/** A message from the input file (JSON Lines). */
export interface Message {
  id: number;
  text: string;
}
/** One answer, from one branch. */
export interface Answer {
  id: number;
  branch: string;
  /** The classifier's similarity score for the chosen intent. */
  score: number;
  reply: string;
}

export default definePipeline("agent-router", (env) =>
  env
    .fromSource(FileSource.jsonl<Message>(env.param("input")), { name: "messages" })
    .classify({ text: (m) => m.text, examples: INTENT_EXAMPLES, k: 3, name: "intent-classifier" })
    .route<Answer>(
      [
        ["question", (s) => s.map((m) => ({ id: m.id, branch: "qa", score: m.score, reply: `Let me look that up: ${m.text}` }), { name: "qa" })],
        [
          "command",
          (s) =>
            s
              .filter((m) => !/rm -rf/.test(m.text), { name: "safety" })
              .map((m) => ({ id: m.id, branch: "cmd", score: m.score, reply: `Running: ${m.text}` }), { name: "cmd" }),
        ],
        ["conversation", (s) => s.map((m) => ({ id: m.id, branch: "chat", score: m.score, reply: `I hear you: ${m.text}` }), { name: "chat" })],
      ],
      { name: "intent-router", by: (m) => m.label },
    )
    .sink(FileSink.jsonl(env.param("output")), { name: "response-aggregator" }),
);
