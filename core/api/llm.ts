/**
 * LLM operators as functions (SAGE Core `EmbeddingGenerator`, `VectorRetriever`, `LLMGenerator`,
 * `IntentClassifier`): pure objects that, in `open`, take the worker's model client and vector
 * store from the function context, and in their map methods call them. The client (an
 * OpenAI-compatible endpoint with a response cache, retries, a rate limiter and usage accounting)
 * lives in `connectors/llm`; this file only declares what operators need from it.
 */
import { InternalError, NonRetryableError } from "../errors.js";
import type { FunctionContext, RecordContext } from "./context.js";
import { MAIN_THREAD, type MaybePromise } from "./functions.js";
import { resolvePlanString, toPlanString, type PlanString, type StringOrParam } from "./params.js";

/** One chat message. */
export interface ChatMessage {
  role: "system" | "user" | "assistant";
  content: string;
}

/** Who is calling the model: the operator and the job (for cache records, usage, model names). */
export interface ModelCall {
  operatorId: string;
  pipeline: string;
  jobId: string;
  params: Readonly<Record<string, string>>;
}

/** How the chat model picks tokens and when it stops: the OpenAI request fields of the same names. */
export interface Decoding {
  /** Token cap of the answer (`max_tokens`). */
  maxTokens: number;
  temperature: number;
  /** The answer ends before the first of these texts (`stop`, at most 4). */
  stop?: string[];
  /** Lowers a token's odds per earlier occurrence in the answer (`frequency_penalty`, -2..2). */
  frequencyPenalty?: number;
  /** Lowers a token's odds once it occurred in the answer (`presence_penalty`, -2..2). */
  presencePenalty?: number;
  /**
   * llama.cpp's multiplicative `repeat_penalty` (1 = off), which the local server takes too. Not an
   * OpenAI field: set it only for endpoints that accept it.
   */
  repeatPenalty?: number;
}

/** A chat request as operators make it. */
export interface ChatCall extends Decoding {
  /** Model name; default: `llm.models.<operator>` in config, else `llm.chat-model`. */
  model?: string;
  messages: ChatMessage[];
  /** JSON schema the answer must match (the endpoint's `response_format: json_schema`). */
  schema?: object;
}

/** What `generate` asks the model for: decoding, and optionally a JSON schema and a model name. */
export type GenerateOptions = Decoding & { schema?: object; model?: string };

/** A chat completion and the model that gave it. */
export interface ChatAnswer {
  text: string;
  /** The model that answered. */
  model: string;
  /** The model asked for, when the `llm.budget` policy `downgrade` sent the call to `model` instead. */
  downgradedFrom?: string;
}

/** What the worker's model client offers operators. */
export interface ModelClient {
  /** Embeddings of `texts`, in one request (per call). */
  embed(texts: readonly string[], model: string | undefined, call: ModelCall): Promise<number[][]>;
  /** One chat completion's text. */
  chat(request: ChatCall, call: ModelCall): Promise<string>;
  /** One chat completion, with the model that answered it (a client without it is asked `chat`). */
  chatAnswer?(request: ChatCall, call: ModelCall): Promise<ChatAnswer>;
}

/** A chat completion from `models`, by `chatAnswer` when it has one. */
async function answerOf(models: ModelClient, request: ChatCall, call: ModelCall): Promise<ChatAnswer> {
  if (models.chatAnswer) return models.chatAnswer(request, call);
  return { text: await models.chat(request, call), model: request.model ?? "" };
}

/** The field that marks an output record answered by the cheaper model of the `downgrade` budget policy. */
export const LLM_DOWNGRADED_FIELD = "llmDowngraded";

/** `{ llmDowngraded: "<from>-><to>" }` for a downgraded answer, else nothing. */
function downgradeMark(answer: ChatAnswer): { llmDowngraded?: string } {
  return answer.downgradedFrom === undefined ? {} : { [LLM_DOWNGRADED_FIELD]: `${answer.downgradedFrom}->${answer.model}` };
}

/** A retrieved chunk. */
export interface Hit {
  /** Chunk id (`<source>#<n>`). */
  id: string;
  /** Document the chunk came from (path relative to the indexed folder). */
  source: string;
  text: string;
  /** Cosine similarity to the query, in [-1, 1]. */
  score: number;
}

/** A vector index opened for searching. */
export interface VectorIndex {
  search(vector: readonly number[], k: number): Promise<Hit[]>;
}

/** The built-in `llm` service every worker has (`ctx.service<LlmServices>(LLM_SERVICES)`). */
export interface LlmServices {
  models: ModelClient;
  /** Opens the vector index persisted at `path` (cached per path). */
  openIndex(path: string): Promise<VectorIndex>;
}

/** Name of the built-in LLM service (reserved: a pipeline cannot register another under it). */
export const LLM_SERVICES = "llm";

function callOf(ctx: RecordContext, pipeline: string): ModelCall {
  return { operatorId: ctx.operatorId, pipeline, jobId: ctx.jobId, params: ctx.params };
}

/** Base of LLM operators: binds the worker's `llm` service in `open`, lets go of it in `close`. */
abstract class LlmFunction {
  protected services: LlmServices | null = null;
  protected pipeline = "";
  async open(ctx: FunctionContext): Promise<void> {
    this.services = await ctx.service<LlmServices>(LLM_SERVICES);
    this.pipeline = ctx.pipeline;
  }
  close(): MaybePromise<void> {
    this.services = null;
  }
  /** Model calls wait on I/O: an LLM operator's stage stays on the worker's main thread (on the prototype: the plan hash is unchanged). */
  get [MAIN_THREAD](): boolean {
    return true;
  }
  protected get models(): ModelClient {
    if (!this.services) throw new InternalError("LLM operator used before open()");
    return this.services.models;
  }
}

/** A record with its embedding. */
export type Embedded<T> = T & { embedding: number[] };

/** `embed`: one embedding request per micro-batch (not per record). */
export class EmbedFunction<T> extends LlmFunction {
  constructor(
    readonly text: (value: T) => string,
    readonly model?: string,
  ) {
    super();
  }
  async mapBatch(values: T[], ctx: RecordContext): Promise<Array<Embedded<T>>> {
    const texts = values.map((v) => {
      const t = this.text(v);
      if (typeof t !== "string") throw new NonRetryableError(`embed "${ctx.operatorId}": text() must return a string, got ${typeof t}`);
      return t;
    });
    const vectors = await this.models.embed(texts, this.model, callOf(ctx, this.pipeline));
    return values.map((v, i) => ({ ...v, embedding: vectors[i]! }));
  }
}

/** A record with what was retrieved for it (its embedding is dropped). */
export type Retrieved<T> = Omit<T, "embedding"> & { hits: Hit[] };

/** `retrieve`: top-k chunks of a persisted vector index for each record's embedding. */
export class RetrieveFunction<T extends { embedding: number[] }> extends LlmFunction {
  readonly index: PlanString;
  constructor(
    index: StringOrParam,
    readonly k: number,
  ) {
    super();
    this.index = toPlanString(index);
  }
  async map(value: T, ctx: RecordContext): Promise<Retrieved<T>> {
    const path = resolvePlanString(this.index, ctx.params, `retrieve "${ctx.operatorId}"`);
    if (!Array.isArray(value.embedding))
      throw new NonRetryableError(`retrieve "${ctx.operatorId}": the record has no embedding array (put .embed(...) before it)`);
    const index = await this.services!.openIndex(path);
    const hits = await index.search(value.embedding, this.k);
    const { embedding: _drop, ...rest } = value;
    return { ...rest, hits };
  }
}

/** Fills `{{path.to.field}}` placeholders from a record; a missing field is the record's error. */
export function fillTemplate(template: string, value: unknown, where: string): string {
  return template.replace(/\{\{\s*([A-Za-z0-9_.]+)\s*\}\}/g, (_m, path: string) => {
    let cur: unknown = value;
    for (const key of path.split(".")) cur = cur !== null && typeof cur === "object" ? (cur as Record<string, unknown>)[key] : undefined;
    if (cur === undefined || cur === null) throw new NonRetryableError(`${where}: the record has no field "${path}" for the template placeholder {{${path}}}`);
    return typeof cur === "string" ? cur : JSON.stringify(cur);
  });
}

/** A record with the chat messages built for it. */
export type Prompted<T> = T & { messages: ChatMessage[] };

/** `prompt`: builds chat messages from a user template (and optional system template). */
export class PromptFunction<T> {
  constructor(
    readonly user: string | ((value: T) => string),
    readonly system?: string,
  ) {}
  map(value: T, ctx: RecordContext): Prompted<T> {
    const where = `prompt "${ctx.operatorId}"`;
    const messages: ChatMessage[] = [];
    if (this.system !== undefined) messages.push({ role: "system", content: fillTemplate(this.system, value, where) });
    messages.push({ role: "user", content: typeof this.user === "string" ? fillTemplate(this.user, value, where) : this.user(value) });
    return { ...value, messages };
  }
}

/**
 * A record with the model's answer (and the parsed JSON when a schema was given); `llmDowngraded`
 * is `"<from>-><to>"` when the budget policy `downgrade` had the cheaper model answer.
 */
export type Generated<T, J = unknown> = T & { answer: string; json?: J; llmDowngraded?: string };

/** `generate`: one chat completion per record from its `messages`. */
export class GenerateFunction<T extends { messages: ChatMessage[] }> extends LlmFunction {
  constructor(readonly options: GenerateOptions) {
    super();
  }
  async map(value: T, ctx: RecordContext): Promise<Generated<T>> {
    if (!Array.isArray(value.messages)) throw new NonRetryableError(`generate "${ctx.operatorId}": the record has no messages (put .prompt(...) before it)`);
    const answered = await answerOf(this.models, { ...this.options, messages: value.messages }, callOf(ctx, this.pipeline));
    const answer = answered.text;
    if (!this.options.schema) return { ...value, answer, ...downgradeMark(answered) };
    try {
      return { ...value, answer, json: JSON.parse(answer) as unknown, ...downgradeMark(answered) };
    } catch {
      throw new NonRetryableError(`generate "${ctx.operatorId}": the model's answer is not JSON matching the schema: ${answer.slice(0, 120)}`);
    }
  }
}

/** A record with its label and how sure the classifier is (`llmDowngraded` as in `Generated`). */
export type Labelled<T, L extends string = string> = T & { label: L; score: number; llmDowngraded?: string };

const dot = (a: readonly number[], b: readonly number[]): number => a.reduce((s, x, i) => s + x * b[i]!, 0);

/**
 * `classify` by embedding similarity: each label has example texts; a record gets the label of its
 * nearest examples (mean of the top `k` similarities per label). One embedding request per batch.
 */
export class EmbeddingClassifier<T, L extends string> extends LlmFunction {
  private examples: Array<{ label: L; vector: number[] }> | null = null;
  constructor(
    readonly text: (value: T) => string,
    readonly labels: Readonly<Record<L, readonly string[]>>,
    readonly k: number,
    readonly model?: string,
  ) {
    super();
  }
  override close(): MaybePromise<void> {
    this.examples = null;
    return super.close();
  }
  private async exampleVectors(call: ModelCall): Promise<Array<{ label: L; vector: number[] }>> {
    if (this.examples) return this.examples;
    const entries = (Object.entries(this.labels) as Array<[L, readonly string[]]>).flatMap(([label, texts]) => texts.map((t) => ({ label, t })));
    const vectors = await this.models.embed(
      entries.map((e) => e.t),
      this.model,
      call,
    );
    this.examples = entries.map((e, i) => ({ label: e.label, vector: vectors[i]! }));
    return this.examples;
  }
  async mapBatch(values: T[], ctx: RecordContext): Promise<Array<Labelled<T, L>>> {
    const call = callOf(ctx, this.pipeline);
    const examples = await this.exampleVectors(call);
    const vectors = await this.models.embed(values.map(this.text), this.model, call);
    return values.map((v, i) => {
      const byLabel = new Map<L, number[]>();
      for (const e of examples) byLabel.set(e.label, [...(byLabel.get(e.label) ?? []), dot(vectors[i]!, e.vector)]);
      let best: { label: L; score: number } | null = null;
      for (const [label, sims] of byLabel) {
        const top = sims.sort((a, b) => b - a).slice(0, this.k);
        const score = top.reduce((s, x) => s + x, 0) / top.length;
        if (!best || score > best.score) best = { label, score };
      }
      return { ...v, label: best!.label, score: best!.score };
    });
  }
}

/** `classify` by a chat model constrained to a JSON schema whose only field is the label. */
export class ChatClassifier<T, L extends string> extends LlmFunction {
  constructor(
    readonly text: (value: T) => string,
    readonly labels: readonly L[],
    readonly instructions: string,
    readonly model?: string,
  ) {
    super();
  }
  async map(value: T, ctx: RecordContext): Promise<Labelled<T, L>> {
    const schema = { type: "object", properties: { label: { type: "string", enum: this.labels } }, required: ["label"] };
    const answered = await answerOf(
      this.models,
      {
        messages: [
          { role: "system", content: `${this.instructions}\nAnswer with JSON: {"label": one of ${this.labels.join(", ")}}.` },
          { role: "user", content: this.text(value) },
        ],
        maxTokens: 16,
        temperature: 0,
        schema,
        ...(this.model ? { model: this.model } : {}),
      },
      callOf(ctx, this.pipeline),
    );
    const answer = answered.text;
    let label: unknown;
    try {
      label = (JSON.parse(answer) as { label?: unknown }).label;
    } catch {
      label = undefined;
    }
    if (typeof label !== "string" || !this.labels.includes(label as L)) {
      throw new NonRetryableError(`classify "${ctx.operatorId}": the model answered ${answer.slice(0, 80)}, not one of ${this.labels.join(", ")}`);
    }
    return { ...value, label: label as L, score: 1, ...downgradeMark(answered) };
  }
}

/** A model call an LLM operator makes for each record (each batch, for embeddings). */
export interface OperatorModelCall {
  kind: "chat" | "embeddings";
  /** The model the operator names, else undefined (the configured model for its operator id, else the default). */
  model: string | undefined;
  /** The most answer tokens the call may add (`max_tokens`; 0 for embeddings). */
  answerTokens: number;
}

/** The model call of an operator's function, or null when it calls no model (a retriever, a prompt, a user function). */
export function modelCallOf(fn: unknown): OperatorModelCall | null {
  if (fn instanceof GenerateFunction) return { kind: "chat", model: fn.options.model, answerTokens: fn.options.maxTokens };
  // 16: the max_tokens ChatClassifier.map asks for (a constant there would change its source, so its plan hash).
  if (fn instanceof ChatClassifier) return { kind: "chat", model: fn.model, answerTokens: 16 };
  if (fn instanceof EmbedFunction || fn instanceof EmbeddingClassifier) return { kind: "embeddings", model: fn.model, answerTokens: 0 };
  return null;
}
