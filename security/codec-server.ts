/**
 * A remote codec endpoint for the Temporal Web UI and CLI: `POST …/encode` and `POST …/decode` take
 * and return `{"payloads":[...]}` through the codec. CORS lets the configured Web UI origins call it
 * from the browser; with a token, a request without `Authorization: Bearer <token>` gets 401, so
 * the UI shows decrypted payloads only to whoever holds the token.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { createHash, timingSafeEqual } from "node:crypto";
import type { PayloadCodec } from "@temporalio/common";
import type { Logger } from "pino";
import { UsageError } from "../core/errors.js";
import { PayloadDecryptionError } from "./errors.js";
import { PayloadJsonError, payloadsFromJson, payloadsToJson } from "./payload-json.js";

/** How a codec server is set up. */
export interface CodecServerOptions {
  codec: PayloadCodec;
  /** 0: any free port. */
  port: number;
  host: string;
  /** Origins allowed to call from a browser (`*`: any). */
  corsOrigins: readonly string[];
  /** Bearer token every encode/decode request must carry (null: none asked). */
  token: string | null;
  logger: Logger;
  /** Largest request body (default 64 MiB: a history page of payloads of up to 2 MiB each). */
  maxBodyBytes?: number;
}

/** A running codec server. */
export interface CodecServer {
  /** `http://host:port`, the endpoint to give the Web UI. */
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

/** Request headers the Web UI sends with codec calls. */
const ALLOWED_HEADERS = "Content-Type, Authorization, X-Namespace";

/** An HTTP answer with a status and a JSON error body. */
class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function digest(value: string): Buffer {
  return createHash("sha256").update(value).digest();
}

/** Compares the bearer token in constant time (digests have equal length whatever the input). */
function authorized(req: IncomingMessage, token: string | null): boolean {
  if (token === null) return true;
  const m = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? "");
  return m !== null && timingSafeEqual(digest(m[1]!.trim()), digest(token));
}

/** CORS headers for an allowed origin (none for another origin or a non-browser caller). */
function corsHeaders(req: IncomingMessage, origins: readonly string[]): Record<string, string> {
  const origin = req.headers.origin;
  if (!origin || !(origins.includes("*") || origins.includes(origin))) return {};
  return { "access-control-allow-origin": origin, "access-control-allow-credentials": "true", vary: "Origin" };
}

async function readBody(req: IncomingMessage, limit: number): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw new HttpError(413, `request body over ${limit} bytes`);
    chunks.push(chunk);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString("utf8"));
  } catch {
    throw new HttpError(400, "request body is not JSON");
  }
}

/** Answers one request; errors become a status and a JSON `{ error }` body. */
async function handle(req: IncomingMessage, res: ServerResponse, options: CodecServerOptions): Promise<void> {
  const cors = corsHeaders(req, options.corsOrigins);
  const send = (status: number, body?: unknown, extra: Record<string, string> = {}) => {
    const headers = { ...cors, ...extra, ...(body === undefined ? {} : { "content-type": "application/json" }) };
    res.writeHead(status, headers).end(body === undefined ? undefined : JSON.stringify(body));
  };
  const action = /\/(encode|decode)$/.exec(new URL(req.url ?? "/", "http://codec").pathname)?.[1];
  if (req.method === "OPTIONS") {
    // A preflight carries no credentials: answer it for an allowed origin, refuse it for another.
    if (!cors["access-control-allow-origin"]) return send(403, { error: `origin ${req.headers.origin ?? "(none)"} is not allowed` });
    return send(204, undefined, {
      "access-control-allow-methods": "POST, OPTIONS",
      "access-control-allow-headers": ALLOWED_HEADERS,
      "access-control-max-age": "600",
    });
  }
  if (!action) return send(404, { error: "POST /encode or /decode" });
  if (req.method !== "POST") return send(405, { error: "use POST" }, { allow: "POST, OPTIONS" });
  if (!authorized(req, options.token)) return send(401, { error: "a bearer token is required" }, { "www-authenticate": 'Bearer realm="sage codec"' });
  try {
    const payloads = payloadsFromJson(await readBody(req, options.maxBodyBytes ?? 64 * 1024 * 1024));
    const out = action === "encode" ? await options.codec.encode(payloads) : await options.codec.decode(payloads);
    options.logger.debug({ action, payloads: payloads.length, namespace: req.headers["x-namespace"] }, "codec request");
    send(200, payloadsToJson(out));
  } catch (err) {
    const status = err instanceof HttpError ? err.status : err instanceof PayloadJsonError ? 400 : err instanceof PayloadDecryptionError ? 422 : 500;
    if (status === 500) options.logger.error({ err }, "codec request failed");
    else options.logger.warn({ action, status, error: (err as Error).message }, "codec request refused");
    send(status, { error: (err as Error).message });
  }
}

/** Starts the codec server; a port in use is a `UsageError` naming it. */
export async function startCodecServer(options: CodecServerOptions): Promise<CodecServer> {
  const server = createServer((req, res) => {
    handle(req, res, options).catch((err: unknown) => {
      options.logger.error({ err }, "codec server failed to answer");
      if (!res.headersSent) res.writeHead(500).end();
    });
  });
  await new Promise<void>((ok, fail) => {
    server.once("error", (err: NodeJS.ErrnoException) =>
      fail(
        err.code === "EADDRINUSE"
          ? new UsageError(`port ${options.port} on ${options.host} is in use: pick another with --port or security.codec-server.port`)
          : err,
      ),
    );
    server.listen(options.port, options.host, ok);
  });
  const port = (server.address() as { port: number }).port;
  const host = options.host.includes(":") ? `[${options.host}]` : options.host;
  return {
    url: `http://${host}:${port}`,
    port,
    close: () =>
      new Promise((ok) => {
        server.close(() => ok());
        server.closeAllConnections(); // the Web UI keeps connections alive
      }),
  };
}
