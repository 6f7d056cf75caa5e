/**
 * Turns a failed connection to the Temporal frontend into one clear error. The SDK's own errors do
 * not say why: the client's is "Failed to connect before the deadline" for every TLS failure, the
 * worker's a Rust transport dump. So when TLS is configured, a Node TLS handshake with the same
 * settings names the reason (an expired or untrusted certificate, a wrong name, a refused client).
 */
import { isIP } from "node:net";
import { connect as tlsConnect, type PeerCertificate, type TLSSocket } from "node:tls";
import { ConfigError, ServerUnavailableError, type SageError } from "../core/errors.js";
import type { ConnectionSettings } from "./connection.js";

type TlsSettings = Exclude<ConnectionSettings["tls"], boolean | undefined>;

// gRPC status codes of a frontend (or a gateway before it) that refuses the caller.
const UNAUTHENTICATED = 16;
const PERMISSION_DENIED = 7;
/** How long a probe waits after its handshake for the server's verdict on the client certificate (TLS 1.3 sends it later). */
const CLIENT_CERT_VERDICT_MS = 300;

/** The error to raise when connecting with `settings` (from `connectionOptions`) failed with `err`. */
export async function connectError(settings: ConnectionSettings, err: unknown): Promise<SageError> {
  const address = settings.address;
  const refused = refusal(err);
  if (refused) {
    return new ConfigError(
      `the Temporal server at ${address} refused the credentials (${refused}); check temporal.api-key, temporal.tls.cert and temporal.tls.key`,
    );
  }
  const tls = settings.tls;
  const reason = tls ? await tlsProblem(address, tls === true ? {} : tls) : null;
  if (reason) return new ServerUnavailableError(`TLS to the Temporal server at ${address} failed: ${reason}`, { cause: err });
  return new ServerUnavailableError(
    `no Temporal server answers at ${address} (${(err as Error).message}); start one with \`sage dev\` or set temporal.address / SAGE_TEMPORAL_ADDRESS`,
    { cause: err },
  );
}

/** The server's words when it refused the caller's credentials, else null. */
function refusal(err: unknown): string | null {
  for (let e = err as { code?: unknown; details?: unknown; message?: unknown; cause?: unknown } | undefined; e; e = e.cause as typeof e) {
    if (e.code === UNAUTHENTICATED || e.code === PERMISSION_DENIED) return String(e.details ?? e.message);
    // The worker's native connection reports the gRPC status in its message only.
    if (typeof e.message === "string" && /valid authentication credentials|permission to execute/i.test(e.message)) return e.message;
  }
  return null;
}

/** Why a TLS handshake to `address` with `tls` fails, or null when it succeeds (or nothing listens). */
async function tlsProblem(address: string, tls: TlsSettings): Promise<string | null> {
  const i = address.lastIndexOf(":");
  const host = address.slice(0, i);
  const servername = tls.serverNameOverride ?? (isIP(host) ? undefined : host);
  const socket = tlsConnect({
    host,
    port: Number(address.slice(i + 1)),
    ...(servername ? { servername } : {}),
    ...(tls.serverRootCACertificate ? { ca: Buffer.from(tls.serverRootCACertificate) } : {}),
    ...(tls.clientCertPair ? { cert: Buffer.from(tls.clientCertPair.crt), key: Buffer.from(tls.clientCertPair.key) } : {}),
    ALPNProtocols: ["h2"],
    // Verified below, so that an expired certificate's dates can be shown.
    rejectUnauthorized: false,
  });
  try {
    return await new Promise<string | null>((done) => {
      socket.setTimeout(3_000, () => done(null));
      socket.once("error", (e: NodeJS.ErrnoException) => done(e.code === "ECONNREFUSED" ? null : handshakeFailure(e, tls)));
      socket.once("secureConnect", () => {
        if (!socket.authorized) return done(untrusted(socket, servername ?? host));
        // A server that requires a client certificate says so after the handshake; else this one is fine.
        setTimeout(() => done(null), CLIENT_CERT_VERDICT_MS);
      });
    });
  } finally {
    socket.destroy();
  }
}

function handshakeFailure(e: Error, tls: TlsSettings): string {
  if (/certificate required|handshake failure|bad certificate|unknown ca/i.test(e.message)) {
    return tls.clientCertPair
      ? `the server refused our client certificate (${e.message.trim()}); check temporal.tls.cert and temporal.tls.key`
      : `the server requires a client certificate (${e.message.trim()}); set temporal.tls.cert and temporal.tls.key`;
  }
  return `${e.message.trim()} (does the server speak TLS on this port?)`;
}

function untrusted(socket: TLSSocket, name: string): string {
  const cert: PeerCertificate = socket.getPeerCertificate();
  const code = String(socket.authorizationError);
  if (code === "CERT_HAS_EXPIRED") return `the server's certificate (${cert.subject?.CN ?? "no CN"}) expired on ${cert.valid_to}`;
  if (code === "CERT_NOT_YET_VALID") return `the server's certificate (${cert.subject?.CN ?? "no CN"}) is not valid before ${cert.valid_from}`;
  if (code === "ERR_TLS_CERT_ALTNAME_INVALID") {
    return `the server's certificate is for ${cert.subjectaltname ?? cert.subject?.CN}, not "${name}"; set temporal.tls.server-name to the name it is for`;
  }
  return `the server's certificate is not trusted (${code}); set temporal.tls.ca to the PEM file of the CA that signed it`;
}
