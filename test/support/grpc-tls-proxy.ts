/**
 * A TLS-terminating gRPC proxy for tests: HTTP/2 over TLS in front of a plaintext Temporal frontend
 * (the dev server has no TLS option). It can require a client certificate signed by a CA, and
 * refuse calls whose `authorization` header is not the expected API key, as a TLS-enabled frontend
 * or a cloud gateway would. It records what it saw so that tests can show what the client sent.
 */
import http2 from "node:http2";
import { readFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import type { TLSSocket } from "node:tls";

/** What the proxy requires of its clients. */
export interface GrpcTlsProxyOptions {
  /** Plaintext frontend `host:port` to forward to. */
  upstream: string;
  /** PEM files of the proxy's server certificate and key. */
  cert: string;
  key: string;
  /** When set, a client must present a certificate signed by this CA (mTLS). */
  clientCa?: string;
  /** When set, a call must carry `authorization: Bearer <apiKey>`, or it fails with UNAUTHENTICATED. */
  apiKey?: string;
}

/** One gRPC call the proxy received. */
export interface ProxiedCall {
  path: string;
  /** The TLS version the call came over (`TLSv1.3`). */
  protocol: string | null;
  authorization: string | undefined;
  /** Subject CN of the client certificate, if the client presented one. */
  clientCertSubject: string | undefined;
  refused: boolean;
}

/** A running proxy. */
export interface GrpcTlsProxy {
  readonly address: string;
  /** Calls received, in order. */
  readonly calls: ProxiedCall[];
  /** TLS handshakes that failed, with the reason the TLS layer gave. */
  readonly handshakeErrors: string[];
  close(): Promise<void>;
}

const GRPC_UNAUTHENTICATED = "16";

/** Starts a proxy on a free port of 127.0.0.1. */
export async function startGrpcTlsProxy(options: GrpcTlsProxyOptions): Promise<GrpcTlsProxy> {
  const calls: ProxiedCall[] = [];
  const handshakeErrors: string[] = [];
  const sessions = new Set<http2.Http2Session>();
  let upstream: http2.ClientHttp2Session | null = null;
  const upstreamSession = () => {
    if (!upstream || upstream.closed || upstream.destroyed) {
      upstream = http2.connect(`http://${options.upstream}`);
      upstream.on("error", () => undefined); // each stream reports its own failure
      sessions.add(upstream);
    }
    return upstream;
  };
  const server = http2.createSecureServer({
    cert: readFileSync(options.cert),
    key: readFileSync(options.key),
    ...(options.clientCa ? { ca: readFileSync(options.clientCa), requestCert: true, rejectUnauthorized: true } : {}),
  });
  server.on("tlsClientError", (err) => handshakeErrors.push(err.message));
  server.on("session", (s) => {
    sessions.add(s);
    s.on("close", () => sessions.delete(s));
  });
  server.on("stream", (stream, headers) => {
    const socket = stream.session?.socket as TLSSocket | undefined;
    const cn = socket?.getPeerCertificate().subject?.CN;
    const subject = cn === undefined ? undefined : String(cn);
    const authorization = typeof headers.authorization === "string" ? headers.authorization : undefined;
    const refused = options.apiKey !== undefined && authorization !== `Bearer ${options.apiKey}`;
    calls.push({ path: String(headers[":path"]), protocol: socket?.getProtocol() ?? null, authorization, clientCertSubject: subject, refused });
    if (refused) {
      stream.respond(
        { ":status": 200, "content-type": "application/grpc", "grpc-status": GRPC_UNAUTHENTICATED, "grpc-message": "API key refused by the test proxy" },
        { endStream: true },
      );
      return;
    }
    forward(stream, headers, upstreamSession());
  });
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  return {
    address: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    calls,
    handshakeErrors,
    async close() {
      const closed = new Promise<void>((ok) => server.close(() => ok()));
      // Long polls (a worker's) would hold `close` for up to a minute.
      for (const s of sessions) s.destroy();
      await closed;
    },
  };
}

/** Relays one call: request headers and body up, response headers, body and trailers down. */
function forward(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, upstream: http2.ClientHttp2Session): void {
  const out: http2.OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) {
    if (name !== ":scheme" && name !== ":authority") out[name] = value;
  }
  const req = upstream.request(out);
  let trailers: http2.OutgoingHttpHeaders = {};
  req.on("response", (responseHeaders, flags) => {
    if (stream.destroyed) return;
    // A trailers-only response (a gRPC error) ends with its headers.
    if (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) return stream.respond(responseHeaders, { endStream: true });
    stream.respond(responseHeaders, { waitForTrailers: true });
    req.pipe(stream);
  });
  req.on("trailers", (t) => (trailers = t));
  stream.on("wantTrailers", () => stream.sendTrailers(trailers));
  req.on("error", () => stream.destroyed || stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR));
  stream.on("error", () => undefined);
  // A client that cancels (a worker shutting down its polls) cancels upstream too.
  stream.on("close", () => req.closed || req.close(http2.constants.NGHTTP2_CANCEL));
  stream.pipe(req);
}
