/** Connection settings for clients and workers, from configuration (address, namespace, TLS, API key). */
import { readFileSync } from "node:fs";
import type { TLSConfig } from "@temporalio/client";
import type { SageConfig } from "../core/config/schema.js";
import { ConfigError } from "../core/errors.js";

/** Options accepted by both `Connection.connect` and `NativeConnection.connect`. */
export interface ConnectionSettings {
  address: string;
  tls?: TLSConfig | boolean;
  apiKey?: string;
}

function file(path: string | undefined, key: string): Buffer | undefined {
  if (!path) return undefined;
  try {
    return readFileSync(path);
  } catch (err) {
    throw new ConfigError(`config temporal.tls.${key} = "${path}": cannot read file (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
}

/** Address, TLS and API key for the configured server. */
export function connectionOptions(config: SageConfig): ConnectionSettings {
  const t = config.temporal;
  const settings: ConnectionSettings = { address: t.address };
  // One without the other used to be dropped silently, and the server then refused an anonymous client.
  if (Boolean(t.tls.cert) !== Boolean(t.tls.key)) {
    const [set, missing] = t.tls.cert ? ["cert", "key"] : ["key", "cert"];
    throw new ConfigError(`config temporal.tls.${set} is set but temporal.tls.${missing} is not: a client certificate needs both files`);
  }
  const cert = file(t.tls.cert, "cert");
  const key = file(t.tls.key, "key");
  const ca = file(t.tls.ca, "ca");
  // An explicit `enabled: false` is plaintext (an API key through a local proxy); files of TLS with it are a contradiction.
  if (t.tls.enabled === false && (cert || ca)) {
    throw new ConfigError(`config temporal.tls.enabled is false but temporal.tls.${cert ? "cert" : "ca"} is set: turn TLS on or drop the file`);
  }
  if (t.tls.enabled ?? Boolean(cert || ca || t["api-key"])) {
    settings.tls = {
      ...(t.tls["server-name"] ? { serverNameOverride: t.tls["server-name"] } : {}),
      ...(ca ? { serverRootCACertificate: ca } : {}),
      ...(cert && key ? { clientCertPair: { crt: cert, key } } : {}),
    };
  }
  if (t["api-key"]) settings.apiKey = t["api-key"];
  return settings;
}
