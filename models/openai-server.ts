/**
 * The local OpenAI-compatible model server (`sage models serve`): chat completions (plain and
 * streamed; `response_format` json_object and json_schema; `stop`, `frequency_penalty`,
 * `presence_penalty` and llama.cpp's `repeat_penalty`), embeddings (float and base64), the model
 * list and a health check, over the two small local models. Usage counts in every answer.
 */
import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { LocalChatModel, type ChatMessage, type ChatRequest } from "./chat-model.js";
import { SentenceEmbeddingModel } from "./embedding-model.js";
import { HttpError, listen, readJson, sendJson, startEvents, type ListeningServer } from "./http.js";
import { LOCAL_CHAT_MODEL, LOCAL_EMBEDDING_MODEL, localModelFiles, MODELS_DIR } from "./paths.js";

/** Requests served so far, by endpoint, and the tokens they cost. */
export interface ServerStats {
  chat: number;
  embeddings: number;
  /** Inputs embedded (a request may carry many). */
  embeddedInputs: number;
  promptTokens: number;
  completionTokens: number;
}

/** A running local model server. */
export interface ModelServer extends ListeningServer {
  stats(): ServerStats;
}

function field<T>(ok: boolean, value: T, message: string, param: string): T {
  if (!ok) throw new HttpError(400, message, param);
  return value;
}

/** Turns an OpenAI chat request body into a `ChatRequest` (400 naming the bad field). */
export function parseChatBody(body: Record<string, unknown>): Omit<ChatRequest, "onText"> & { stream: boolean } {
  const messages = body.messages;
  field(Array.isArray(messages) && messages.length > 0, null, "messages must be a non-empty array", "messages");
  const parsed = (messages as Array<Record<string, unknown>>).map((m, i): ChatMessage => {
    const role = m?.role;
    field(
      ["system", "user", "assistant", "developer"].includes(role as string),
      null,
      `messages[${i}].role must be system, user, assistant or developer`,
      `messages[${i}].role`,
    );
    const content = Array.isArray(m.content)
      ? (m.content as Array<{ type?: string; text?: string }>).map((p) => (p.type === "text" ? (p.text ?? "") : "")).join("")
      : m.content;
    field(typeof content === "string", null, `messages[${i}].content must be a string`, `messages[${i}].content`);
    return { role: role as ChatMessage["role"], content: content as string };
  });
  const maxTokens = body.max_completion_tokens ?? body.max_tokens ?? 256;
  field(Number.isInteger(maxTokens) && (maxTokens as number) > 0, null, "max_tokens must be a positive integer", "max_tokens");
  const temperature = body.temperature ?? 1;
  field(typeof temperature === "number" && temperature >= 0 && temperature <= 2, null, "temperature must be a number in [0, 2]", "temperature");
  const format = body.response_format as { type?: string; json_schema?: { schema?: object } } | undefined;
  let json: ChatRequest["json"];
  if (format?.type === "json_object") json = { kind: "object" };
  else if (format?.type === "json_schema") {
    const schema = field(
      typeof format.json_schema?.schema === "object",
      format.json_schema?.schema,
      "response_format.json_schema.schema must be an object",
      "response_format",
    );
    json = { kind: "schema", schema: schema! };
  } else field(format === undefined || format.type === "text", null, `response_format.type "${format?.type}" is not supported`, "response_format");
  return {
    messages: parsed,
    maxTokens: maxTokens as number,
    temperature: temperature as number,
    ...(typeof body.seed === "number" ? { seed: body.seed } : {}),
    ...(json ? { json } : {}),
    ...parseDecoding(body),
    stream: body.stream === true,
  };
}

const inRange = (v: unknown, low: number, high: number): v is number => typeof v === "number" && v >= low && v <= high;

/** `stop` and the penalties of a chat request body, as OpenAI (and llama.cpp's server, for `repeat_penalty`) define them. */
function parseDecoding(body: Record<string, unknown>): Pick<ChatRequest, "stop" | "repeatPenalty" | "frequencyPenalty" | "presencePenalty"> {
  const stop = typeof body.stop === "string" ? [body.stop] : (body.stop ?? undefined);
  field(
    stop === undefined || (Array.isArray(stop) && stop.length <= 4 && stop.every((s) => typeof s === "string" && s !== "")),
    null,
    "stop must be a non-empty string or an array of at most 4 of them",
    "stop",
  );
  const out: ReturnType<typeof parseDecoding> = stop ? { stop: stop as string[] } : {};
  for (const [param, key, low, high] of [
    ["frequency_penalty", "frequencyPenalty", -2, 2],
    ["presence_penalty", "presencePenalty", -2, 2],
    ["repeat_penalty", "repeatPenalty", 0, 2],
  ] as const) {
    const value = body[param] ?? undefined;
    field(value === undefined || inRange(value, low, high), null, `${param} must be a number in [${low}, ${high}]`, param);
    if (value !== undefined) out[key] = value as number;
  }
  return out;
}

/** Starts the server over the models installed in `modelsDir`. */
export async function startModelServer(options: { port?: number; host?: string; modelsDir?: string; sequences?: number } = {}): Promise<ModelServer> {
  const files = localModelFiles(options.modelsDir ?? MODELS_DIR);
  const [chat, embedder] = await Promise.all([
    LocalChatModel.load(files.chatGguf, { sequences: options.sequences ?? 2 }),
    SentenceEmbeddingModel.load(files.embeddingOnnx, files.tokenizerJson),
  ]);
  const stats: ServerStats = { chat: 0, embeddings: 0, embeddedInputs: 0, promptTokens: 0, completionTokens: 0 };
  const created = Math.floor(Date.now() / 1000);

  const chatCompletion = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const body = (await readJson(req)) as Record<string, unknown>;
    const model = (body.model as string | undefined) ?? LOCAL_CHAT_MODEL;
    if (model !== LOCAL_CHAT_MODEL) throw new HttpError(404, `model "${model}" is not served here (chat model: ${LOCAL_CHAT_MODEL})`, "model");
    const { stream, ...request } = parseChatBody(body);
    stats.chat++;
    const id = `chatcmpl-${randomUUID()}`;
    const now = Math.floor(Date.now() / 1000);
    if (!stream) {
      const r = await chat.complete(request);
      stats.promptTokens += r.promptTokens;
      stats.completionTokens += r.completionTokens;
      sendJson(res, 200, {
        id,
        object: "chat.completion",
        created: now,
        model,
        choices: [{ index: 0, message: { role: "assistant", content: r.text, refusal: null }, finish_reason: r.finishReason, logprobs: null }],
        usage: { prompt_tokens: r.promptTokens, completion_tokens: r.completionTokens, total_tokens: r.promptTokens + r.completionTokens },
      });
      return;
    }
    const events = startEvents(res);
    const chunk = (delta: object, finish: string | null, usage?: object) => ({
      id,
      object: "chat.completion.chunk",
      created: now,
      model,
      choices: [{ index: 0, delta, finish_reason: finish, logprobs: null }],
      ...(usage ? { usage } : {}),
    });
    events.send(chunk({ role: "assistant", content: "" }, null));
    const r = await chat.complete({ ...request, onText: (text) => events.send(chunk({ content: text }, null)) });
    stats.promptTokens += r.promptTokens;
    stats.completionTokens += r.completionTokens;
    events.send(
      chunk({}, r.finishReason, { prompt_tokens: r.promptTokens, completion_tokens: r.completionTokens, total_tokens: r.promptTokens + r.completionTokens }),
    );
    events.end();
  };

  const embeddings = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const body = (await readJson(req)) as Record<string, unknown>;
    const model = (body.model as string | undefined) ?? LOCAL_EMBEDDING_MODEL;
    if (model !== LOCAL_EMBEDDING_MODEL) throw new HttpError(404, `model "${model}" is not served here (embedding model: ${LOCAL_EMBEDDING_MODEL})`, "model");
    const input = typeof body.input === "string" ? [body.input] : body.input;
    if (!Array.isArray(input) || input.length === 0 || !input.every((s) => typeof s === "string")) {
      throw new HttpError(400, "input must be a string or a non-empty array of strings", "input");
    }
    const format = body.encoding_format ?? "float";
    if (format !== "float" && format !== "base64")
      throw new HttpError(400, `encoding_format must be float or base64, got ${JSON.stringify(format)}`, "encoding_format");
    stats.embeddings++;
    stats.embeddedInputs += input.length;
    const { vectors, tokens } = await embedder.embed(input);
    stats.promptTokens += tokens;
    sendJson(res, 200, {
      object: "list",
      model,
      data: vectors.map((v, index) => ({
        object: "embedding",
        index,
        embedding: format === "base64" ? Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString("base64") : Array.from(v),
      })),
      usage: { prompt_tokens: tokens, total_tokens: tokens },
    });
  };

  const server = await listen(
    async (req, res, url) => {
      const route = `${req.method} ${url.pathname.replace(/\/+$/, "")}`;
      switch (route) {
        case "POST /v1/chat/completions":
          return chatCompletion(req, res);
        case "POST /v1/embeddings":
          return embeddings(req, res);
        case "GET /v1/models":
          return sendJson(res, 200, {
            object: "list",
            data: [LOCAL_CHAT_MODEL, LOCAL_EMBEDDING_MODEL].map((id) => ({ id, object: "model", created, owned_by: "sage-local" })),
          });
        case "GET /health":
          return sendJson(res, 200, { status: "ok", models: [LOCAL_CHAT_MODEL, LOCAL_EMBEDDING_MODEL] });
        case "GET /stats":
          return sendJson(res, 200, stats);
        default:
          throw new HttpError(404, `no route ${route}`);
      }
    },
    options.port ?? 0,
    options.host,
  );

  return {
    ...server,
    stats: () => ({ ...stats }),
    async close() {
      await server.close();
      await chat.release();
      await embedder.release();
    },
  };
}
