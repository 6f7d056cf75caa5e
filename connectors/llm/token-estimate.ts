/**
 * Token estimates of a request before it is sent, for the rate limiter: the model's own tokenizer
 * where one is known (the local embedding model's `tokenizer.json`), else the characters per token
 * measured from the usage the endpoint reported for that model so far (4 before the first answer).
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Tokenizer } from "@huggingface/tokenizers";
import { LOCAL_EMBEDDING_MODEL, MODELS_DIR } from "../../models/paths.js";
import { INITIAL_CHARS_PER_TOKEN } from "../../core/plan/batch-tokens.js";

export { INITIAL_CHARS_PER_TOKEN };

/** Counts the tokens of one text with a model's own tokenizer. */
export type TokenCounter = (text: string) => number;

/** Per model: a tokenizer, or a running characters-per-token ratio. */
export class TokenEstimator {
  private readonly measured = new Map<string, { chars: number; tokens: number }>();

  constructor(private readonly tokenizers: ReadonlyMap<string, TokenCounter> = new Map()) {}

  /** Characters per token of a model: measured over all its answers so far, else the initial 4. */
  charsPerToken(model: string): number {
    const m = this.measured.get(model);
    return m && m.tokens > 0 && m.chars > 0 ? m.chars / m.tokens : INITIAL_CHARS_PER_TOKEN;
  }

  /** Estimated prompt tokens of these texts for a model (at least 1 per text). */
  estimate(model: string, texts: readonly string[]): number {
    const count = this.tokenizers.get(model);
    if (count) return texts.reduce((n, t) => n + Math.max(1, count(t)), 0);
    const ratio = this.charsPerToken(model);
    return texts.reduce((n, t) => n + Math.max(1, Math.ceil(t.length / ratio)), 0);
  }

  /** Whether a model's estimates come from its own tokenizer. */
  hasTokenizer(model: string): boolean {
    return this.tokenizers.has(model);
  }

  /** Records what the endpoint reported: `promptTokens` for texts of `chars` characters. */
  observe(model: string, chars: number, promptTokens: number): void {
    if (chars <= 0 || promptTokens <= 0) return;
    const m = this.measured.get(model) ?? { chars: 0, tokens: 0 };
    m.chars += chars;
    m.tokens += promptTokens;
    this.measured.set(model, m);
  }
}

/** Tokenizers of the installed local models (the embedding model's `tokenizer.json`), loaded on first use. */
export function localTokenizers(modelsDir = MODELS_DIR): Map<string, TokenCounter> {
  const path = join(modelsDir, "all-minilm-l6-v2-q", "tokenizer.json");
  if (!existsSync(path)) return new Map();
  let tokenizer: Tokenizer | null = null;
  const count: TokenCounter = (text) => (tokenizer ??= new Tokenizer(JSON.parse(readFileSync(path, "utf8")) as object, {})).encode(text).ids.length;
  return new Map([[LOCAL_EMBEDDING_MODEL, count]]);
}
