/**
 * The model client a worker gives its LLM operators: any OpenAI-compatible endpoint through the
 * `openai` package, behind the response cache (a retried activity never pays twice), the per-model
 * rate limiter, usage accounting, and the retry rules:
 * - 429: wait its Retry-After (the stage activity heartbeats meanwhile) and try again, a few times;
 * - 5xx or no connection: back off and try again, a few times;
 * - then `ModelUnavailableError`: the stage activity fails and Temporal retries it (after the
 *   Retry-After, if any); answers already received come from the cache;
 * - any other 4xx: `NonRetryableError`, so the record goes to the dead letters with the reason.
 * In a recorded re-run (`sage rerun --recorded`) only answers in the original job's record are
 * used, and a request not in it is a `NotRecordedError` naming it: no model is called.
 */
import OpenAI from "openai";
import type { Logger } from "pino";
import type { ChatCall, ModelCall, ModelClient } from "../../core/api/llm.js";
import { ModelUnavailableError, NonRetryableError, NotRecordedError } from "../../core/errors.js";
import type { SageConfig } from "../../core/config/schema.js";
import { ModelRateLimiter } from "./rate-limiter.js";
import { requestKey, ResponseCache, type CachedResponse } from "./response-cache.js";
import { appendUsage } from "./usage-ledger.js";
import { modelAnswered } from "../../monitoring/llm-metrics.js";

/** Default endpoint: the local `sage models serve`. */
export const LOCAL_BASE_URL = "http://127.0.0.1:8089/v1";

/** Job parameter naming the job whose recorded answers a re-run uses (`<pipeline>/<jobId>`). */
export const RECORDED_FROM_PARAM = "sage.recorded-from";

/** What a call returned, whichever way it was answered. */
interface Answer {
  response: unknown;
  usage: CachedResponse["usage"];
  cached: boolean;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Seconds or an HTTP date in a Retry-After header, as ms (null when absent or unreadable). */
export function retryAfterMs(value: string | null | undefined): number | null {
  if (!value) return null;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const at = Date.parse(value);
  return Number.isNaN(at) ? null : Math.max(0, at - Date.now());
}

/** An OpenAI-compatible endpoint with cache, limiter, retries and usage accounting. */
export class EndpointModelClient implements ModelClient {
  private readonly client: OpenAI;
  private readonly cache: ResponseCache;
  private readonly limiter: ModelRateLimiter;
  private readonly records = new Map<string, Promise<Set<string>>>();
  /** Calls that reached the endpoint / were answered from cache or record, in this process. */
  readonly stats = { endpointCalls: 0, cacheHits: 0 };

  constructor(
    private readonly config: SageConfig["llm"],
    private readonly dataDir: string,
    private readonly logger: Logger,
  ) {
    this.client = new OpenAI({
      baseURL: config["base-url"] ?? LOCAL_BASE_URL,
      apiKey: config["api-key"] ?? "local",
      maxRetries: 0,
      timeout: config.timeout,
    });
    this.cache = new ResponseCache(dataDir);
    this.limiter = new ModelRateLimiter(config["requests-per-minute"], config["tokens-per-minute"]);
  }

  private modelFor(kind: "chat" | "embeddings", explicit: string | undefined, call: ModelCall): string {
    return explicit ?? this.config.models[call.operatorId] ?? (kind === "chat" ? this.config["chat-model"] : this.config["embedding-model"]);
  }

  async embed(texts: readonly string[], model: string | undefined, call: ModelCall): Promise<number[][]> {
    if (texts.length === 0) return [];
    const body = { model: this.modelFor("embeddings", model, call), input: [...texts] };
    const answer = await this.answer("embeddings", body, call, texts.length, () =>
      this.client.embeddings.create(body).then((r) => ({
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
    const answer = await this.answer("chat", body, call, 1, () =>
      this.client.chat.completions.create(body).then((r) => ({
        response: r.choices[0]?.message.content ?? "",
        usage: { promptTokens: r.usage?.prompt_tokens ?? 0, completionTokens: r.usage?.completion_tokens ?? 0 },
      })),
    );
    return answer.response as string;
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

  /** Cache or record first; else the endpoint, with the retry rules; then ledger and record. */
  private async answer(
    kind: CachedResponse["kind"],
    body: { model: string },
    call: ModelCall,
    inputs: number,
    send: () => Promise<{ response: unknown; usage: CachedResponse["usage"] }>,
  ): Promise<Answer> {
    const key = requestKey(kind, body);
    const from = call.params[RECORDED_FROM_PARAM];
    let answer: Answer;
    if (from !== undefined) {
      const cached = (await this.recordOf(from)).has(key) ? await this.cache.get(key) : null;
      if (!cached) {
        throw new NotRecordedError(
          `recorded re-run: operator "${call.operatorId}" made a ${kind} request to model "${body.model}" (request ${key.slice(0, 12)}: ${JSON.stringify(body).slice(0, 160)}) ` +
            `that job ${from} never made, so there is no recorded answer; re-run without --recorded to call the model`,
        );
      }
      answer = { response: cached.response, usage: cached.usage, cached: true };
    } else {
      const cached = this.config.cache ? await this.cache.get(key) : null;
      if (cached) answer = { response: cached.response, usage: cached.usage, cached: true };
      else {
        const fresh = await this.send(kind, body.model, call, body, send);
        await this.cache.put(key, { kind, request: body, response: fresh.response, usage: fresh.usage, at: new Date().toISOString() });
        answer = { ...fresh, cached: false };
      }
    }
    if (answer.cached) this.stats.cacheHits++;
    await this.cache.record(call.pipeline, call.jobId, key);
    const price = this.config.prices[body.model];
    const cost = answer.cached || !price ? 0 : (answer.usage.promptTokens * price.input + answer.usage.completionTokens * price.output) / 1e6;
    const usage = {
      operator: call.operatorId,
      model: body.model,
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

  /** One call with the in-activity retry rules. */
  private async send<T>(kind: string, model: string, call: ModelCall, body: unknown, send: () => Promise<T>): Promise<T> {
    const estimate = Math.ceil(JSON.stringify(body).length / 4);
    const tries = this.config["max-tries"];
    for (let attempt = 1; ; attempt++) {
      await this.limiter.acquire(model, estimate);
      try {
        this.stats.endpointCalls++;
        return await send();
      } catch (err) {
        const status = err instanceof OpenAI.APIError ? err.status : undefined;
        const what = `${kind} request of operator "${call.operatorId}" to model "${model}"`;
        if (status !== undefined && status !== 429 && status < 500) {
          throw new NonRetryableError(`the model endpoint refused the ${what} with HTTP ${status}: ${(err as Error).message}`, { cause: err });
        }
        const after = status === 429 ? retryAfterMs((err as InstanceType<typeof OpenAI.APIError>).headers?.get("retry-after")) : null;
        const reason = status === undefined ? `could not reach the endpoint (${(err as Error).message})` : `HTTP ${status}`;
        const waitMs = after ?? Math.min(8_000, 500 * 2 ** (attempt - 1));
        if (attempt >= tries || waitMs > this.config["max-retry-after"]) {
          throw new ModelUnavailableError(`the ${what} failed ${attempt} time(s), last with ${reason}; the activity will be retried`, after, { cause: err });
        }
        this.logger.warn({ operator: call.operatorId, model, status, attempt, waitMs }, "model call failed, retrying");
        await sleep(waitMs);
      }
    }
  }
}
