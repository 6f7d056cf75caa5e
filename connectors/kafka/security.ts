/**
 * `kafka.ssl` and `kafka.sasl` turned, once, into what a Kafka connection needs: TLS options with
 * the files read and their certificates checked for dates, and SASL credentials with the password
 * read from an environment variable or a file (never from the config file). Every client the
 * project builds, kafkajs and our own wire connection alike, takes this one object.
 */
import { readFileSync } from "node:fs";
import type { ConnectionOptions } from "node:tls";
import { X509Certificate } from "node:crypto";
import type { SageConfig } from "../../core/config/schema.js";
import { ConfigError } from "../../core/errors.js";

/** A SASL mechanism as named in the config (and by kafkajs). */
export type SaslMechanism = "plain" | "scram-sha-256" | "scram-sha-512";

/** Who a client authenticates as. */
export interface SaslCredentials {
  mechanism: SaslMechanism;
  username: string;
  password: string;
}

/** How clients reach the brokers: TLS and SASL, each optional; `files` names the sources for error messages. */
export interface KafkaSecurity {
  ssl?: ConnectionOptions;
  sasl?: SaslCredentials;
  files?: { ca?: string; cert?: string; key?: string };
}

/** The environment variable read for the SASL password when neither `password-env` nor `password-file` is set. */
export const DEFAULT_PASSWORD_ENV = "SAGE_KAFKA_SASL_PASSWORD";

/** The mechanism as the broker names it: `SCRAM-SHA-512`. */
export function mechanismName(m: SaslMechanism): string {
  return m.toUpperCase();
}

/** Certificates in a PEM bundle (empty when it holds none). */
function certificatesIn(pem: string): X509Certificate[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  return blocks.map((b) => new X509Certificate(b));
}

/** Reads `kafka.ssl.<key>`; for certificates, refuses a file without one or with one outside its dates. */
function pemFile(key: "ca" | "cert" | "key", path: string, now: Date): Buffer {
  let data: Buffer;
  try {
    data = readFileSync(path);
  } catch (err) {
    throw new ConfigError(`kafka.ssl.${key} = "${path}": cannot read the file (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  if (key === "key") return data;
  let certs: X509Certificate[];
  try {
    certs = certificatesIn(data.toString("utf8"));
  } catch (err) {
    throw new ConfigError(`kafka.ssl.${key} = "${path}": not a PEM certificate (${(err as Error).message})`);
  }
  if (certs.length === 0) throw new ConfigError(`kafka.ssl.${key} = "${path}": holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
  for (const c of certs) {
    const from = new Date(c.validFrom);
    const to = new Date(c.validTo);
    if (to < now) throw new ConfigError(`kafka.ssl.${key} = "${path}": the certificate ${c.subject.replace(/\n/g, ", ")} expired on ${to.toISOString()}`);
    if (from > now)
      throw new ConfigError(`kafka.ssl.${key} = "${path}": the certificate ${c.subject.replace(/\n/g, ", ")} is valid only from ${from.toISOString()}`);
  }
  return data;
}

function sslOf(ssl: SageConfig["kafka"]["ssl"], now: Date): Pick<KafkaSecurity, "ssl" | "files"> {
  if (!(ssl.enabled || ssl.ca || ssl.cert || ssl.key)) return {};
  if (Boolean(ssl.cert) !== Boolean(ssl.key))
    throw new ConfigError(`kafka.ssl: a client certificate needs both cert and key (got only ${ssl.cert ? "cert" : "key"})`);
  const options: ConnectionOptions = {
    ...(ssl.ca ? { ca: pemFile("ca", ssl.ca, now) } : {}),
    ...(ssl.cert ? { cert: pemFile("cert", ssl.cert, now) } : {}),
    ...(ssl.key ? { key: pemFile("key", ssl.key, now) } : {}),
    ...(ssl["server-name"] ? { servername: ssl["server-name"] } : {}),
  };
  return { ssl: options, files: { ...(ssl.ca ? { ca: ssl.ca } : {}), ...(ssl.cert ? { cert: ssl.cert } : {}), ...(ssl.key ? { key: ssl.key } : {}) } };
}

function passwordOf(sasl: SageConfig["kafka"]["sasl"], env: NodeJS.ProcessEnv): string {
  const file = sasl["password-file"];
  if (file) {
    try {
      // A trailing newline is the editor's, not the password's.
      return readFileSync(file, "utf8").replace(/\r?\n$/, "");
    } catch (err) {
      throw new ConfigError(`kafka.sasl.password-file = "${file}": cannot read the file (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
    }
  }
  const name = sasl["password-env"] ?? DEFAULT_PASSWORD_ENV;
  const value = env[name];
  if (value === undefined || value === "") {
    throw new ConfigError(
      `kafka.sasl: no password for user "${sasl.username}": the environment variable ${name} is not set ` +
        `(set it, name another with kafka.sasl.password-env, or give a file with kafka.sasl.password-file)`,
    );
  }
  return value;
}

/** The security of the configured cluster; reads the files and the password now, so a bad one fails before anything starts. */
export function kafkaSecurityOf(config: SageConfig, env: NodeJS.ProcessEnv = process.env, now = new Date()): KafkaSecurity {
  const { sasl } = config.kafka;
  const out: KafkaSecurity = sslOf(config.kafka.ssl, now);
  if (!sasl.mechanism && (sasl.username || sasl["password-env"] || sasl["password-file"])) {
    throw new ConfigError("kafka.sasl: a username or password is set but no kafka.sasl.mechanism (plain, scram-sha-256 or scram-sha-512)");
  }
  if (sasl.mechanism) {
    if (!sasl.username) throw new ConfigError(`kafka.sasl.mechanism = "${sasl.mechanism}" needs kafka.sasl.username`);
    out.sasl = { mechanism: sasl.mechanism, username: sasl.username, password: passwordOf(sasl, env) };
  }
  return out;
}

/** True when connections use neither TLS nor SASL. */
export function isPlaintext(security: KafkaSecurity): boolean {
  return !security.ssl && !security.sasl;
}
