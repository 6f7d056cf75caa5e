/**
 * The SAGE Core intelligent agent pipeline: classify each message's intent, route it to the
 * question / command / conversation branch, and gather every answer in one aggregator sink.
 * This variant classifies by a deterministic keyword rule: the routing tests and the router
 * benchmark use it to check routing exactly. `pipeline.ts` classifies with a real embedding model.
 */
import { definePipeline, FileSink, FileSource, MapFunction, type FunctionContext } from "sage-temporal";

/** A message from the input file (JSON Lines). */
export interface Message {
  id: number;
  text: string;
}
/** A message with its intent. */
export interface Classified extends Message {
  intent: "question" | "command" | "conversation";
}
/** One answer, from one branch. */
export interface Answer {
  id: number;
  branch: string;
  reply: string;
}

/** Deterministic intent classifier after the SAGE Core `IntentClassifier("model/intent")`. */
export class IntentClassifier extends MapFunction<Message, Classified> {
  private rules: Array<[RegExp, Classified["intent"]]> = [];
  open(_ctx: FunctionContext): void {
    this.rules = [
      [/\?\s*$/, "question"],
      [/^(please |run |start |stop |deploy |show )/i, "command"],
    ];
  }
  map(m: Message): Classified {
    const hit = this.rules.find(([re]) => re.test(m.text));
    return { ...m, intent: hit ? hit[1] : "conversation" };
  }
}

export default definePipeline("agent-router-keywords", (env) =>
  env
    .fromSource(FileSource.jsonl<Message>(env.param("input")), { name: "messages" })
    .map(new IntentClassifier(), { name: "intent-classifier" })
    .route<Answer>(
      [
        ["question", (s) => s.map((m) => ({ id: m.id, branch: "qa", reply: `Let me look that up: ${m.text}` }), { name: "qa" })],
        [
          "command",
          (s) =>
            s.filter((m) => !/rm -rf/.test(m.text), { name: "safety" }).map((m) => ({ id: m.id, branch: "cmd", reply: `Running: ${m.text}` }), { name: "cmd" }),
        ],
        ["conversation", (s) => s.map((m) => ({ id: m.id, branch: "chat", reply: `I hear you: ${m.text}` }), { name: "chat" })],
      ],
      { name: "intent-router", by: (m) => m.intent },
    )
    .sink(FileSink.jsonl(env.param("output")), { name: "response-aggregator" }),
);
