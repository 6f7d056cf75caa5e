/**
 * The DETERMINISTIC TEST PROVIDER: an OpenAI-compatible endpoint with no model behind it, for tests
 * that need exact bytes, 429s, 500s or delays. Never used by the demo or by users' pipelines.
 *
 * Answers are pure functions of the request: chat replies `echo: <last user message>`, embeddings
 * are unit vectors derived from a hash of each input. Faults are asked for in two ways:
 * - inside the text: `[[429x2]]` (the first 2 requests carrying this text get 429 with
 *   `Retry-After: 1`), `[[500x1]]`, `[[400]]` (always), `[[delay=300]]` (ms before answering);
 * - or queued for the next requests whatever they carry: `server.failNext({ status: 500 })`.
 * Every request is counted (`counts()`, or `GET /stats`).
 */
import { createHash } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { HttpError, listen, readJson, sendJson, type ListeningServer } from "./http.js";

/** A fault to answer with instead of the normal reply. */
export interface Fault {
  status: number;
  /** Seconds for the `Retry-After` header (429). */
  retryAfter?: number;
  /** Milliseconds for the `retry-after-ms` header (429), as OpenAI sends it. */
  retryAfterMs?: number;
  /** Delay before answering, ms. */
  delayMs?: number;
  /** Exact bytes of the answer body (default: an OpenAI-shaped error). */
  body?: string;
}

/** What the provider saw. */
export interface FaultCounts {
  requests: number;
  byPath: Record<string, number>;
  byStatus: Record<string, number>;
  chat: number;
  embeddings: number;
  embeddedInputs: number;
  /** Requests per text: the last user message of a chat, each input of an embedding request. */
  byText: Record<string, number>;
}

/** A running deterministic test provider. */
export interface FaultServer extends ListeningServer {
  counts(): FaultCounts;
  /** Answers the next requests (any path) with these faults, in order. */
  failNext(...faults: Fault[]): void;
  /** Zeroes the counts, forgets fault progress and queued faults. */
  reset(): void;
}

/** The deterministic embedding of a text in this provider: 8 dimensions, unit length. */
export function fakeEmbedding(text: string): number[] {
  const h = createHash("sha256").update(text).digest();
  const v = Array.from({ length: 8 }, (_, i) => h.readInt16LE(i * 2) / 32768);
  const n = Math.sqrt(v.reduce((s, x) => s + x * x, 0)) || 1;
  return v.map((x) => x / n);
}

const DIRECTIVE = /\[\[(\d{3})(?:x(\d+))?\]\]|\[\[delay=(\d+)\]\]/g;

/** Starts the provider on a free port (or `port`). */
export async function startFaultServer(options: { port?: number } = {}): Promise<FaultServer> {
  let counts: FaultCounts;
  let seen: Map<string, number>;
  let queued: Fault[];
  const reset = (): void => {
    counts = { requests: 0, byPath: {}, byStatus: {}, chat: 0, embeddings: 0, embeddedInputs: 0, byText: {} };
    seen = new Map();
    queued = [];
  };
  reset();

  /** The fault the directives in `text` ask for on this (the n-th) request carrying it. */
  const faultIn = (text: string): Fault | null => {
    const n = (seen.get(text) ?? 0) + 1;
    seen.set(text, n);
    counts.byText[text] = n;
    let fault: Fault | null = null;
    let delayMs = 0;
    for (const m of text.matchAll(DIRECTIVE)) {
      if (m[3]) delayMs = Number(m[3]);
      else if (m[1] && (m[2] === undefined || n <= Number(m[2]))) fault = { status: Number(m[1]), ...(m[1] === "429" ? { retryAfter: 1 } : {}) };
    }
    if (fault) return { ...fault, delayMs };
    return delayMs > 0 ? { status: 200, delayMs } : null;
  };

  const answer = async (res: ServerResponse, fault: Fault | null, ok: () => object): Promise<void> => {
    if (fault?.delayMs) await new Promise((r) => setTimeout(r, fault.delayMs));
    const status = fault?.status ?? 200;
    counts.byStatus[status] = (counts.byStatus[status] ?? 0) + 1;
    if (status === 200) return sendJson(res, 200, ok());
    const headers: Record<string, string> = {
      ...(fault?.retryAfter !== undefined ? { "retry-after": String(fault.retryAfter) } : {}),
      ...(fault?.retryAfterMs !== undefined ? { "retry-after-ms": String(fault.retryAfterMs) } : {}),
    };
    const body =
      fault?.body ?? JSON.stringify({ error: { message: `deterministic test provider: injected ${status}`, type: "injected", param: null, code: null } });
    res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(body), ...headers });
    res.end(body);
  };

  const chat = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const body = (await readJson(req)) as { model?: string; messages?: Array<{ role: string; content: string }> };
    if (!Array.isArray(body.messages) || body.messages.length === 0) throw new HttpError(400, "messages must be a non-empty array", "messages");
    counts.chat++;
    const last = [...body.messages].reverse().find((m) => m.role === "user")?.content ?? "";
    const directed = faultIn(last);
    const fault = queued.shift() ?? directed;
    const content = `echo: ${last.replace(DIRECTIVE, "").trim()}`;
    const promptTokens = body.messages.reduce((s, m) => s + m.content.split(/\s+/).length, 0);
    const completionTokens = content.split(/\s+/).length;
    await answer(res, fault, () => ({
      id: `chatcmpl-${createHash("sha256").update(JSON.stringify(body)).digest("hex").slice(0, 16)}`,
      object: "chat.completion",
      created: 0,
      model: body.model ?? "deterministic",
      choices: [{ index: 0, message: { role: "assistant", content, refusal: null }, finish_reason: "stop", logprobs: null }],
      usage: { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens },
    }));
  };

  const embeddings = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const body = (await readJson(req)) as { model?: string; input?: string | string[]; encoding_format?: string };
    const input = typeof body.input === "string" ? [body.input] : body.input;
    if (!Array.isArray(input) || input.length === 0) throw new HttpError(400, "input must be a string or a non-empty array of strings", "input");
    counts.embeddings++;
    counts.embeddedInputs += input.length;
    const directed = input.map(faultIn).find((f) => f !== null) ?? null;
    const fault = queued.shift() ?? directed;
    const tokens = input.reduce((s, t) => s + t.split(/\s+/).length, 0);
    await answer(res, fault, () => ({
      object: "list",
      model: body.model ?? "deterministic",
      data: input.map((t, index) => {
        const v = fakeEmbedding(t);
        return {
          object: "embedding",
          index,
          embedding: body.encoding_format === "base64" ? Buffer.from(new Float32Array(v).buffer).toString("base64") : v,
        };
      }),
      usage: { prompt_tokens: tokens, total_tokens: tokens },
    }));
  };

  const server = await listen(async (req, res, url) => {
    const path = url.pathname.replace(/\/+$/, "");
    counts.requests++;
    counts.byPath[path] = (counts.byPath[path] ?? 0) + 1;
    if (req.method === "POST" && path === "/v1/chat/completions") return chat(req, res);
    if (req.method === "POST" && path === "/v1/embeddings") return embeddings(req, res);
    if (req.method === "GET" && path === "/stats") return sendJson(res, 200, counts);
    if (req.method === "GET" && path === "/health") return sendJson(res, 200, { status: "ok", provider: "deterministic test provider" });
    throw new HttpError(404, `no route ${req.method} ${path}`);
  }, options.port ?? 0);

  return {
    ...server,
    counts: () => structuredClone(counts),
    failNext: (...faults) => void queued.push(...faults),
    reset,
  };
}
