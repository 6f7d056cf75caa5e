/** The HTTP plumbing both model servers share: JSON bodies, OpenAI-shaped errors, server-sent events. */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/** An error answered as `{ error: { message, type, param, code } }` with an HTTP status. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly param: string | null = null,
    readonly type = status >= 500 ? "server_error" : "invalid_request_error",
  ) {
    super(message);
  }
}

/** Reads a JSON request body (at most `limit` bytes). */
export async function readJson(req: IncomingMessage, limit = 16 * 1024 * 1024): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw new HttpError(413, `request body larger than ${limit} bytes`);
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString("utf8");
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new HttpError(400, `request body is not JSON: ${text.slice(0, 80)}`);
  }
}

/** Sends a JSON answer. */
export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text), ...headers });
  res.end(text);
}

/** Sends an OpenAI-shaped error. */
export function sendError(res: ServerResponse, err: unknown, headers: Record<string, string> = {}): void {
  const e = err instanceof HttpError ? err : new HttpError(500, err instanceof Error ? err.message : String(err));
  if (res.headersSent) {
    res.end();
    return;
  }
  sendJson(res, e.status, { error: { message: e.message, type: e.type, param: e.param, code: null } }, headers);
}

/** Starts writing a server-sent event stream. */
export function startEvents(res: ServerResponse): { send(data: unknown): void; end(): void } {
  res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive" });
  return {
    send: (data) => void res.write(`data: ${JSON.stringify(data)}\n\n`),
    end: () => {
      res.write("data: [DONE]\n\n");
      res.end();
    },
  };
}

/** A request handler; throwing an HttpError answers with it. */
export type Handler = (req: IncomingMessage, res: ServerResponse, url: URL) => Promise<void>;

/** A listening HTTP server. */
export interface ListeningServer {
  /** Base URL, e.g. `http://127.0.0.1:8089`. */
  url: string;
  port: number;
  close(): Promise<void>;
}

/** Listens on `host:port` (0 = a free port) and routes every request to `handler`. */
export async function listen(handler: Handler, port: number, host = "127.0.0.1"): Promise<ListeningServer> {
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://local");
    handler(req, res, url).catch((err: unknown) => sendError(res, err));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve());
  });
  const actual = (server.address() as AddressInfo).port;
  return {
    url: `http://${host}:${actual}`,
    port: actual,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
