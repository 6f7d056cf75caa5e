/**
 * The SAGE Core intelligent agent pipeline on the local models: the intent classifier embeds each
 * message (one request per micro-batch) and picks the intent of the nearest labelled examples
 * (`intents.ts`); the router sends it to one branch, and one aggregator sink gathers every answer.
 * - question: retrieves from the RAG example's corpus index and generates an answer from the sources
 *   (embed -> retrieve -> prompt -> generate, as `examples/rag` does);
 * - command: a safety check, then a real run of a whitelisted read-only program in a sandbox
 *   (`commands.ts`), or an answer saying why nothing ran;
 * - conversation: the chat model replies.
 * Job parameters: `input` (messages, JSON Lines), `index` (the LanceDB folder `sage index
 * examples/rag/corpus` builds), `output` (answers, JSON Lines). (The tiny local chat model is a poor
 * classifier, so intents come from embedding similarity; `classify({ by: "chat", ... })` is the other way.)
 */
import { definePipeline, FileSink, FileSource, type DataStream, type Hit, type Labelled, type StringOrParam } from "sage-temporal";
import { ANSWER_DECODING, firstSentences, PROMPT_SOURCES, sourcesPrompt } from "../rag/prompt.js";
import { CommandRunner, DENIED, type CommandRun } from "./commands.js";
import { INTENT_EXAMPLES, type Intent } from "./intents.js";

/** A message from the input file (JSON Lines). */
export interface Message {
  id: number;
  text: string;
}
/** One answer, from one branch. */
export interface Answer {
  id: number;
  branch: "qa" | "cmd" | "chat";
  /** The classifier's similarity score for the chosen intent. */
  score: number;
  reply: string;
  /** qa: the documents the reply was grounded on, best first. */
  sources?: string[];
  /** cmd: the whitelisted command that ran (absent when none matched). */
  command?: CommandRun;
}

type Routed = Labelled<Message, Intent>;

/** Decoding of a chat reply: one line, short, no loops (see `ANSWER_DECODING`). */
const CHAT_DECODING = { ...ANSWER_DECODING, maxTokens: 40 };

/** question -> an answer from the two best passages of the corpus index. */
function qaBranch(s: DataStream<Routed>, index: StringOrParam): DataStream<Answer> {
  return s
    .embed({ text: (m) => m.text, name: "qa" })
    .retrieve({ index, k: 3, name: "qa-retriever" })
    .map((m) => ({ ...m, messages: sourcesPrompt(m.text, m.hits) }), { name: "qa-prompt" })
    .generate({ ...ANSWER_DECODING, name: "qa-generator" })
    .map((m): Answer => ({ id: m.id, branch: "qa", score: m.score, reply: firstSentences(m.answer), sources: sourcesOf(m.hits) }), { name: "qa-answer" });
}

function sourcesOf(hits: readonly Hit[]): string[] {
  return [...new Set(hits.slice(0, PROMPT_SOURCES).map((h) => h.source))];
}

/** command -> the safety check, then the sandboxed run (or the reason it did not run). */
function commandBranch(s: DataStream<Routed>): DataStream<Answer> {
  return s
    .filter((m) => !DENIED.test(m.text), { name: "safety" })
    .map(new CommandRunner<Routed>(), { name: "cmd-runner" })
    .map((m): Answer => ({ id: m.id, branch: "cmd", score: m.score, reply: m.reply, ...(m.command ? { command: m.command } : {}) }), { name: "cmd" });
}

/** conversation -> a short reply from the chat model. */
function chatBranch(s: DataStream<Routed>): DataStream<Answer> {
  return s
    .prompt("{{text}}", { system: "You are a friendly colleague at work. Reply to the message in one short sentence.", name: "chat" })
    .generate({ ...CHAT_DECODING, name: "chat-generator" })
    .map((m): Answer => ({ id: m.id, branch: "chat", score: m.score, reply: firstSentences(m.answer) }), { name: "chat-answer" });
}

export default definePipeline("agent-router", (env) =>
  env
    .fromSource(FileSource.jsonl<Message>(env.param("input")), { name: "messages" })
    .classify({ text: (m) => m.text, examples: INTENT_EXAMPLES, k: 3, name: "intent-classifier" })
    .route<Answer>(
      [
        ["question", (s) => qaBranch(s, env.param("index"))],
        ["command", commandBranch],
        ["conversation", chatBranch],
      ],
      { name: "intent-router", by: (m) => m.label },
    )
    .sink(FileSink.jsonl(env.param("output")), { name: "response-aggregator" }),
);
