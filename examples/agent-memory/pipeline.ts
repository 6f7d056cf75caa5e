/**
 * An agent that remembers: each turn of a conversation is embedded, the turns the user said earlier
 * in that conversation that are nearest to it are recalled from the agent memory, the turn itself is
 * remembered, and the chat model replies with the recalled turns in its prompt. The memory is a
 * registered service over one LMDB file (`agentMemory()`, in the worker's data dir), so a turn
 * handled by one worker process recalls what another worker process remembered, and a turn
 * remembered again (a retried activity, a job run twice) is kept once.
 * Job parameters: `input` (turns, JSON Lines), `output` (replies, JSON Lines). A conversation's
 * turns must reach `recall` in order (one file split, or one Kafka partition per conversation):
 * a turn recalls only turns with a smaller number, and only those already remembered.
 */
import {
  agentMemory,
  definePipeline,
  FileSink,
  FileSource,
  MapFunction,
  type AgentMemory,
  type ChatMessage,
  type DataStream,
  type Embedded,
  type FunctionContext,
  type StreamExecutionEnvironment,
} from "sage-temporal";
import { ANSWER_DECODING, firstSentences } from "../rag/prompt.js";

/** Name the agent memory is registered under. */
export const MEMORY = "memory";

/** One turn of a conversation (JSON Lines). */
export interface Turn {
  conversation: string;
  /** Its number in the conversation, from 1. */
  turn: number;
  text: string;
}

/** An earlier turn brought back for this one. */
export interface RecalledTurn {
  turn: number;
  text: string;
  /** Cosine similarity to this turn. */
  score: number;
  /** The worker that remembered it. */
  writer: string;
}

/** A turn with what it recalled and whether this run remembered it (false: it already was). */
export type Recollected = Turn & { recalled: RecalledTurn[]; remembered: boolean };

/** The agent's reply to a turn. */
export type Reply = Recollected & { reply: string };

/** Recalls the `k` earlier turns nearest to each turn, then remembers the turn (once, by conversation and number). */
export class Recollection extends MapFunction<Embedded<Turn>, Recollected> {
  private memory: AgentMemory | null = null;
  constructor(readonly k: number) {
    super();
  }
  async open(ctx: FunctionContext): Promise<void> {
    this.memory = await ctx.service<AgentMemory>(MEMORY);
  }
  close(): void {
    this.memory = null; // the worker closes the memory itself, once, at shutdown
  }
  async map(t: Embedded<Turn>): Promise<Recollected> {
    const { embedding, ...turn } = t;
    // Only turns before this one: a retry, or a run over turns already remembered, recalls the same.
    const recalled = await this.memory!.recall({ key: t.conversation, vector: embedding, k: this.k, before: t.turn });
    const remembered = await this.memory!.remember({ key: t.conversation, id: String(t.turn), seq: t.turn, text: t.text, vector: embedding });
    return { ...turn, remembered, recalled: recalled.map((m) => ({ turn: m.seq, text: m.text, score: Math.round(m.score * 1000) / 1000, writer: m.writer })) };
  }
}

/** The recalled turns in the system message, the turn itself as the user's. */
export function memoryPrompt(t: Recollected): ChatMessage[] {
  const earlier = t.recalled.map((m) => `- ${m.text}`).join("\n");
  const system =
    "You are a helpful assistant. Reply to the user's message in one short sentence." +
    (earlier === "" ? "" : ` Use what the user told you earlier:\n${earlier}`);
  return [
    { role: "system", content: system },
    { role: "user", content: t.text },
  ];
}

/** The agent's chain: embed, recall and remember, prompt, reply. */
export function agentReplies(env: StreamExecutionEnvironment): DataStream<Reply> {
  env.registerService(MEMORY, agentMemory());
  return env
    .fromSource(FileSource.jsonl<Turn>(env.param("input")), { name: "turns" })
    .embed({ text: (t) => t.text, name: "turn-embedding" })
    .map(new Recollection(2), { name: "recall" })
    .map((t) => ({ ...t, messages: memoryPrompt(t) }), { name: "memory-prompt" })
    .generate({ ...ANSWER_DECODING, maxTokens: 40, name: "reply-generator" })
    .map(({ messages: _messages, answer, ...t }): Reply => ({ ...t, reply: firstSentences(answer, 1) }), { name: "reply" });
}

export default definePipeline("agent-memory", (env) => agentReplies(env).sink(FileSink.jsonl<Reply>(env.param("output")), { name: "replies" }));
