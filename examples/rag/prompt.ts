/**
 * How the RAG example asks the small local chat model (SmolLM2-135M) for an answer, and how it keeps
 * one or two sentences of it. Shared by the RAG chain and the agent router's question branch.
 */
import type { ChatMessage, Hit } from "sage-temporal";

/**
 * Passages put in front of the model: the best two of the three retrieved. On the labelled questions
 * the third scored well below the first, and it cost a third of the prompt tokens.
 */
export const PROMPT_SOURCES = 2;

/**
 * Decoding of an answer. With the default repeat penalty (1.1) and no stop, the model wrote its first
 * line again and again until the token cap; `stop: ["\n"]` ends the answer with its first line (the
 * sources are unwrapped below, so the model has no hard-wrapped text to imitate), and a stronger
 * repeat penalty with frequency and presence penalties keeps that line from looping. At a cap of 48
 * a long first sentence was sometimes cut; most answers end well before 64.
 */
export const ANSWER_DECODING = {
  maxTokens: 64,
  temperature: 0,
  stop: ["\n"],
  repeatPenalty: 1.2,
  frequencyPenalty: 0.2,
  presencePenalty: 0.2,
};

/** A passage as one line per paragraph: the corpus is wrapped at ~100 characters, which the model copied mid-sentence. */
function unwrap(text: string): string {
  return text
    .split(/\n\s*\n/)
    .map((p) => p.replace(/\s*\n\s*/g, " ").trim())
    .filter((p) => p !== "")
    .join("\n");
}

/**
 * One made-up exchange that shows the form of an answer: with it the model ended most answers after
 * one sentence, and stopped answering "Which ...?" with the lead-in of a list.
 */
const EXAMPLE: ChatMessage[] = [
  { role: "user", content: "Which colours does the logo use?" },
  { role: "assistant", content: "The logo uses green and white." },
];

/** What the system message asks of the model, above the sources (`sage whatif` tries others). */
export const ANSWER_INSTRUCTION = "Answer the user's question about Sage in one or two short sentences, using only these sources.";

/**
 * The sources and the instruction in the system message, the question alone as the user's: with the
 * sources in the user message the model answered with a source's heading or "The answer is:".
 */
export function sourcesPrompt(question: string, hits: readonly Hit[], instruction = ANSWER_INSTRUCTION): ChatMessage[] {
  const sources = hits
    .slice(0, PROMPT_SOURCES)
    .map((h, i) => `[${i + 1}] (${h.source}) ${unwrap(h.text)}`)
    .join("\n");
  return [{ role: "system", content: `${instruction}\n\nSources:\n${sources}` }, ...EXAMPLE, { role: "user", content: question }];
}

const COMPLETE = /[.!?]["')\]`*]*$/;

/** A text cut into sentences (a sentence ends in . ! or ?, maybe closed by a quote, bracket or backtick). */
export function sentencesOf(text: string): string[] {
  const flat = text.replace(/\s+/g, " ").trim();
  return flat === "" ? [] : flat.split(/(?<=[.!?]["')\]`*]*)\s+/);
}

/**
 * The first `max` complete sentences of a model's answer, on one line, none twice. A sentence cut by
 * the token cap, or a lead-in ending in ":" whose list the stop cut off, is dropped; an answer with
 * no complete sentence is kept as the model wrote it, with "…" where it was cut.
 */
export function firstSentences(text: string, max = 2): string {
  const kept: string[] = [];
  for (const sentence of sentencesOf(text)) {
    if (!COMPLETE.test(sentence) || kept.length === max) break;
    if (!kept.includes(sentence)) kept.push(sentence);
  }
  if (kept.length > 0) return kept.join(" ");
  const flat = text.replace(/\s+/g, " ").trim();
  return flat === "" ? flat : `${flat.replace(/[\s,;:]+$/, "")}…`;
}
