/**
 * The model client a worker gives its LLM operators: any OpenAI-compatible endpoint through the
 * `openai` package, behind the response cache (a retried activity never pays twice), the per-model
 * rate limiter (token estimates from `TokenEstimator`), usage accounting, and the retry rules:
 * - 429: pause that model (only) for its `retry-after-ms` / `Retry-After` (the stage activity
 *   heartbeats meanwhile) and try again, a few times;
 * - 5xx or no connection: back off and try again, a few times;
 * - then `ModelUnavailableError`: the stage activity fails and Temporal retries it (after the
 *   Retry-After, if any); answers already received come from the cache;
 * - any other 4xx: `NonRetryableError`, so the record goes to the dead letters with the reason.
 * A call the cache cannot answer must first fit `llm.budget` (`LlmBudget`); what it used is charged
 * durably. Else, by policy: its record goes to the dead letters (`BudgetExceededError`), its stage
 * unit pauses (`BudgetPausedError`), or a chat call goes to the cheaper `downgrade-to` model (from
 * the cache if it answered that request before), and its answer names both models.
 * In a recorded re-run (`sage rerun --recorded`) only answers in the original job's record are
 * used, and a request not in it is a `NotRecordedError` naming it: no model is called.
 */
import type OpenAI from "openai";
import type * as OpenAIModule from "openai";
import type { Logger } from "pino";
import type { ChatAnswer, ChatCall, ModelCall, ModelClient } from "../../core/api/llm.js";
import { BudgetExceededError, ModelUnavailableError, NonRetryableError, NotRecordedError } from "../../core/errors.js";
import type { SageConfig } from "../../core/config/schema.js";
import { LlmBudget } from "./budget-admission.js";
import { ModelRateLimiter, systemClock, type Clock } from "./rate-limiter.js";
import { localTokenizers, TokenEstimator } from "./token-estimate.js";
import { requestKey, ResponseCache, type CachedResponse } from "./response-cache.js";
import { appendUsage } from "./usage-ledger.js";
import { noteCall } from "./call-trail.js";
import { modelAnswered, modelRateLimited, modelWaited } from "../../monitoring/llm-metrics.js";

/** Default endpoint: the local `sage models serve`. */
export const LOCAL_BASE_URL = "http://127.0.0.1:8089/v1";

/** Job parameter naming the job whose recorded answers a re-run uses (`<pipeline>/<jobId>`). */
export const RECORDED_FROM_PARAM = "sage.recorded-from";

/** What a call returned, whichever way it was answered. */
interface Answer {
  response: unknown;
  usage: CachedResponse["usage"];
  cached: boolean;
  /** The model that answered. */
  model: string;
  /** The model asked for, when the downgrade policy had `model` answer instead. */
  downgradedFrom?: string;
}

/** What an endpoint call gives back. */
type Sent = { response: unknown; usage: CachedResponse["usage"] };

/** Seconds or an HTTP date in a Retry-After header, as ms (null when absent or unreadable). */
export function retryAfterMs(value: string | null | undefined): number | null {
  if (!value) return null;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const at = Date.parse(value);
  return Number.isNaN(at) ? null : Math.max(0, at - Date.now());
}

/** The wait a 429 asks for: `retry-after-ms` (OpenAI's, exact) first, else `Retry-After`; null when neither is readable. */
export function retryAfterOf(headers: { get(name: string): string | null } | undefined): number | null {
  const ms = Number(headers?.get("retry-after-ms") ?? "");
  if (headers?.get("retry-after-ms") && Number.isFinite(ms) && ms >= 0) return ms;
  return retryAfterMs(headers?.get("retry-after"));
}

/** What one endpoint call sends, for the limiter: the prompt texts and the most tokens it may generate. */
interface Sizing {
  texts: readonly string[];
  maxCompletionTokens: number;
}

/**
 * The `openai` package, loaded at the first model call: every worker builds this client, and a
 * pipeline that calls no model would otherwise load its 150 modules at start (and each stage thread too).
 */
let openai: Promise<typeof OpenAIModule> | undefined;
const loadOpenAI = (): Promise<typeof OpenAIModule> => (openai ??= import("openai"));

/** An OpenAI-compatible endpoint with cache, limiter, retries and usage accounting. */
export class EndpointModelClient implements ModelClient {
  private clientOnce: Promise<OpenAI> | undefined;
  private readonly cache: ResponseCache;
  /** The per-model limits of this worker (exposed for `sage status` and tests). */
  readonly limiter: ModelRateLimiter;
  /** Token estimates per model (exposed for tests). */
  readonly tokens: TokenEstimator;
  /** `llm.budget` and its ledgers. */
  readonly budget: LlmBudget;
  private readonly records = new Map<string, Promise<Set<string>>>();
  /** Calls that reached the endpoint / were answered from cache or record, in this process. */
  readonly stats = { endpointCalls: 0, cacheHits: 0 };

  constructor(
    private readonly config: SageConfig["llm"],
    private readonly dataDir: string,
    private readonly logger: Logger,
    private readonly clock: Clock = systemClock,
  ) {
    this.cache = new ResponseCache(dataDir);
    const perModel = Object.fromEntries(
      Object.entries(config.limits).map(([model, l]) => [model, { requestsPerMinute: l["requests-per-minute"], tokensPerMinute: l["tokens-per-minute"] }]),
    );
    this.limiter = new ModelRateLimiter({ requestsPerMinute: config["requests-per-minute"], tokensPerMinute: config["tokens-per-minute"] }, perModel, clock);
    this.tokens = new TokenEstimator(localTokenizers());
    this.budget = new LlmBudget(config.budget, dataDir, clock);
  }

  /** The endpoint's client, made at the first call. */
  private client(): Promise<OpenAI> {
    const { config } = this;
    return (this.clientOnce ??= loadOpenAI().then(
      ({ default: OpenAIClient }) =>
        new OpenAIClient({ baseURL: config["base-url"] ?? LOCAL_BASE_URL, apiKey: config["api-key"] ?? "local", maxRetries: 0, timeout: config.timeout }),
    ));
  }

  private modelFor(kind: "chat" | "embeddings", explicit: string | undefined, call: ModelCall): string {
    return explicit ?? this.config.models[call.operatorId] ?? (kind === "chat" ? this.config["chat-model"] : this.config["embedding-model"]);
  }

  async embed(texts: readonly string[], model: string | undefined, call: ModelCall): Promise<number[][]> {
    if (texts.length === 0) return [];
    const body = { model: this.modelFor("embeddings", model, call), input: [...texts] };
    const sizing = { texts, maxCompletionTokens: 0 };
    const answer = await this.answer("embeddings", body, call, texts.length, sizing, (b) =>
      this.client()
        .then((c) => c.embeddings.create(b))
        .then((r) => ({
          response: r.data.map((d) => d.embedding),
          usage: { promptTokens: r.usage?.prompt_tokens ?? 0, completionTokens: 0 },
        })),
    );
    const vectors = answer.response as number[][];
    if (!Array.isArray(vectors) || vectors.length !== texts.length) {
      throw new NonRetryableError(`embeddings endpoint returned ${Array.isArray(vectors) ? vectors.length : "no"} vectors for ${texts.length} inputs`);
    }
    return vectors;
  }

  async chat(request: ChatCall, call: ModelCall): Promise<string> {
    return (await this.chatAnswer(request, call)).text;
  }

  async chatAnswer(request: ChatCall, call: ModelCall): Promise<ChatAnswer> {
    const body = {
      model: this.modelFor("chat", request.model, call),
      messages: request.messages,
      max_tokens: request.maxTokens,
      temperature: request.temperature,
      // Only the fields a call sets: an unset one would change the request's cache key.
      ...(request.stop !== undefined ? { stop: request.stop } : {}),
      ...(request.frequencyPenalty !== undefined ? { frequency_penalty: request.frequencyPenalty } : {}),
      ...(request.presencePenalty !== undefined ? { presence_penalty: request.presencePenalty } : {}),
      ...(request.repeatPenalty !== undefined ? { repeat_penalty: request.repeatPenalty } : {}),
      ...(request.schema
        ? { response_format: { type: "json_schema" as const, json_schema: { name: "answer", schema: request.schema as Record<string, unknown> } } }
        : {}),
    };
    const sizing = { texts: request.messages.map((m) => m.content), maxCompletionTokens: request.maxTokens };
    const answer = await this.answer("chat", body, call, 1, sizing, (b) =>
      this.client()
        .then((c) => c.chat.completions.create(b))
        .then((r) => ({
          response: r.choices[0]?.message.content ?? "",
          usage: { promptTokens: r.usage?.prompt_tokens ?? 0, completionTokens: r.usage?.completion_tokens ?? 0 },
        })),
    );
    return {
      text: answer.response as string,
      model: answer.model,
      ...(answer.downgradedFrom !== undefined ? { downgradedFrom: answer.downgradedFrom } : {}),
    };
  }

  private recordOf(from: string): Promise<Set<string>> {
    let r = this.records.get(from);
    if (!r) {
      const [pipeline, ...job] = from.split("/");
      r = this.cache.recorded(pipeline!, job.join("/"));
      this.records.set(from, r);
    }
    return r;
  }

  /** Cache or record first; else the endpoint, with the retry rules and the budget's policy; then ledger and record. */
  private async answer<B extends { model: string }>(
    kind: CachedResponse["kind"],
    body: B,
    call: ModelCall,
    inputs: number,
    sizing: Sizing,
    send: (body: B) => Promise<Sent>,
  ): Promise<Answer> {
    const request = requestKey(kind, body);
    let key = request;
    const from = call.params[RECORDED_FROM_PARAM];
    let answer: Answer;
    if (from !== undefined) {
      const recorded = await this.recordOf(from);
      // The original job may have had the cheaper model answer this request.
      const to = this.config.budget["downgrade-to"];
      const cheaper = to !== undefined && kind === "chat" && !recorded.has(key) ? { ...body, model: to } : null;
      if (cheaper && recorded.has(requestKey(kind, cheaper))) key = requestKey(kind, cheaper);
      const cached = recorded.has(key) ? await this.cache.get(key) : null;
      if (!cached) {
        throw new NotRecordedError(
          `recorded re-run: operator "${call.operatorId}" made a ${kind} request to model "${body.model}" (request ${key.slice(0, 12)}: ${JSON.stringify(body).slice(0, 160)}) ` +
            `that job ${from} never made, so there is no recorded answer; re-run without --recorded to call the model`,
        );
      }
      const model = (cached.request as { model?: string }).model ?? body.model;
      answer = { response: cached.response, usage: cached.usage, cached: true, model, ...(model !== body.model ? { downgradedFrom: body.model } : {}) };
    } else {
      try {
        answer = await this.cachedOrPaid(kind, body, key, call, sizing, send);
      } catch (err) {
        const cheaper = this.downgradeOf(kind, body, err);
        key = requestKey(kind, cheaper);
        answer = await this.cachedOrPaid(kind, cheaper, key, call, sizing, send).catch((again: unknown) => {
          if (!(again instanceof BudgetExceededError)) throw again;
          throw new BudgetExceededError(again.budget, again.limit, `${(err as BudgetExceededError).detail}; downgraded to ${cheaper.model}: ${again.detail}`);
        });
        answer.downgradedFrom = body.model;
      }
    }
    if (answer.cached) this.stats.cacheHits++;
    await this.cache.record(call.pipeline, call.jobId, key);
    noteCall({ operator: call.operatorId, model: answer.model, request, key });
    const cost = answer.cached ? 0 : this.costOf(answer.model, answer.usage.promptTokens, answer.usage.completionTokens);
    const usage = {
      operator: call.operatorId,
      model: answer.model,
      kind,
      inputs,
      promptTokens: answer.usage.promptTokens,
      completionTokens: answer.usage.completionTokens,
      cached: answer.cached,
      cost,
    };
    await appendUsage(this.dataDir, call.pipeline, call.jobId, usage);
    modelAnswered({ ...usage, pipeline: call.pipeline, jobId: call.jobId });
    return answer;
  }

  /** The response cache's answer to `body`, else the endpoint's within the budget (then cached). */
  private async cachedOrPaid<B extends { model: string }>(
    kind: CachedResponse["kind"],
    body: B,
    key: string,
    call: ModelCall,
    sizing: Sizing,
    send: (body: B) => Promise<Sent>,
  ): Promise<Answer> {
    const cached = this.config.cache ? await this.cache.get(key) : null;
    if (cached) return { response: cached.response, usage: cached.usage, cached: true, model: body.model };
    const fresh = await this.paid(kind, body.model, key, call, sizing, () => send(body));
    await this.cache.put(key, { kind, request: body, response: fresh.response, usage: fresh.usage, at: new Date().toISOString() });
    return { ...fresh, cached: false, model: body.model };
  }

  /** The request for the cheaper model when the downgrade policy applies to `err`; else rethrows `err` (with why not, for a budget refusal). */
  private downgradeOf<B extends { model: string }>(kind: CachedResponse["kind"], body: B, err: unknown): B {
    const to = this.config.budget["downgrade-to"];
    if (!(err instanceof BudgetExceededError) || this.config.budget.policy !== "downgrade" || to === undefined) throw err;
    if (kind !== "chat") {
      throw new BudgetExceededError(
        err.budget,
        err.limit,
        `${err.detail} (policy downgrade routes chat calls only: another model's embeddings are not comparable)`,
      );
    }
    if (body.model === to) throw err;
    return { ...body, model: to };
  }

  /** USD of a call's tokens by `llm.prices` (0 for a model without a price). */
  private costOf(model: string, promptTokens: number, completionTokens: number): number {
    const price = this.config.prices[model];
    return price ? (promptTokens * price.input + completionTokens * price.output) / 1e6 : 0;
  }

  /** An endpoint call inside the budget: admitted on its worst case, charged with what it used. */
  private async paid<T extends { usage: CachedResponse["usage"] }>(
    kind: string,
    model: string,
    requestKey: string,
    call: ModelCall,
    sizing: Sizing,
    send: () => Promise<T>,
  ): Promise<T> {
    const prompt = this.tokens.estimate(model, sizing.texts);
    const estimate = prompt + sizing.maxCompletionTokens;
    if (!this.budget.enabled) return this.send(kind, model, call, estimate, send, sizing);
    const admission = await this.budget.admit({
      pipeline: call.pipeline,
      jobId: call.jobId,
      operator: call.operatorId,
      model,
      requestKey,
      tokens: estimate,
      cost: this.costOf(model, prompt, sizing.maxCompletionTokens),
    });
    let result: T;
    try {
      result = await this.send(kind, model, call, estimate, send, sizing);
    } catch (err) {
      await this.budget.settle(admission, null);
      throw err;
    }
    const { promptTokens, completionTokens } = result.usage;
    await this.budget.settle(admission, { tokens: promptTokens + completionTokens, cost: this.costOf(model, promptTokens, completionTokens) });
    return result;
  }

  /** One call with the limiter and the in-activity retry rules; settles the limiter and the token ratio with the reported usage. */
  private async send<T extends { usage: CachedResponse["usage"] }>(
    kind: string,
    model: string,
    call: ModelCall,
    estimate: number,
    send: () => Promise<T>,
    sizing: Sizing,
  ): Promise<T> {
    const tries = this.config["max-tries"];
    for (let attempt = 1; ; attempt++) {
      // A pause longer than an activity waits goes to Temporal's retry, as the 429 that set it did.
      const paused = this.limiter.pausedFor(model);
      if (paused > this.config["max-retry-after"]) {
        throw new ModelUnavailableError(
          `model "${model}" is paused for ${Math.ceil(paused / 1000)} s by an earlier 429's Retry-After (more than llm.max-retry-after); the activity will be retried`,
          paused,
        );
      }
      const waited = await this.limiter.acquire(model, estimate);
      if (waited > 0) modelWaited(model, waited);
      let result: T;
      try {
        this.stats.endpointCalls++;
        result = await send();
      } catch (err) {
        // The call used no tokens: the estimate goes back to the bucket.
        this.limiter.settle(model, estimate, 0);
        const { APIError } = (await loadOpenAI()).default;
        const status = err instanceof APIError ? err.status : undefined;
        const what = `${kind} request of operator "${call.operatorId}" to model "${model}"`;
        if (status !== undefined && status !== 429 && status < 500) {
          throw new NonRetryableError(`the model endpoint refused the ${what} with HTTP ${status}: ${(err as Error).message}`, { cause: err });
        }
        const after = status === 429 ? retryAfterOf((err as InstanceType<typeof APIError>).headers) : null;
        if (status === 429) {
          modelRateLimited(model);
          // Every call of this model in this worker waits; other models keep going.
          if (after !== null) this.limiter.pause(model, after);
        }
        const reason = status === undefined ? `could not reach the endpoint (${(err as Error).message})` : `HTTP ${status}`;
        const waitMs = after ?? Math.min(8_000, 500 * 2 ** (attempt - 1));
        if (attempt >= tries || waitMs > this.config["max-retry-after"]) {
          throw new ModelUnavailableError(`the ${what} failed ${attempt} time(s), last with ${reason}; the activity will be retried`, after, { cause: err });
        }
        this.logger.warn({ operator: call.operatorId, model, status, attempt, waitMs }, "model call failed, retrying");
        // A paused model waits in `acquire`; a backoff waits here.
        if (after === null) await this.clock.sleep(waitMs);
        continue;
      }
      const chars = sizing.texts.reduce((n, t) => n + t.length, 0);
      this.tokens.observe(model, chars, result.usage.promptTokens);
      this.limiter.settle(model, estimate, result.usage.promptTokens + result.usage.completionTokens);
      return result;
    }
  }
}
