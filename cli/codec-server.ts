/** `sage codec-server`: serves the encryption codec to the Temporal Web UI until interrupted. */
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import type { SageConfig } from "../core/config/schema.js";
import { UsageError } from "../core/errors.js";
import { AesGcmCodec } from "../security/aes-gcm-codec.js";
import { startCodecServer } from "../security/codec-server.js";
import { loadKeyRing } from "../security/key-ring.js";
import { cliLogger, configFrom, uiBase, type GlobalFlags } from "./common.js";

interface CodecServerFlags extends GlobalFlags {
  port?: string;
  host?: string;
  tokenFile?: string;
  corsOrigin?: string[];
}

/** The bearer token in `path` (surrounding whitespace dropped); a missing or empty file is an error naming it. */
export function readToken(path: string): string {
  const file = resolve(path);
  let token: string;
  try {
    token = readFileSync(file, "utf8").trim();
  } catch (err) {
    throw new UsageError(`cannot read the codec server's token file "${file}": ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  if (token === "") throw new UsageError(`the codec server's token file "${file}" is empty`);
  return token;
}

/** Origins the browser may call from: the flags, else the config, else the Web UI of the configured server. */
function corsOrigins(config: SageConfig, flags: CodecServerFlags): string[] {
  const listed = flags.corsOrigin?.length ? flags.corsOrigin : config.security["codec-server"]["cors-origins"]?.split(",");
  if (listed) return listed.map((o) => o.trim().replace(/\/$/, "")).filter((o) => o !== "");
  const ui = uiBase(config);
  if (!ui) return [];
  return ui.includes("://127.0.0.1:") ? [ui, ui.replace("://127.0.0.1:", "://localhost:")] : [ui];
}

function portOf(value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`--port "${value}" is not a port number (0-65535)`);
  return port;
}

/** Starts the codec server and serves until SIGINT/SIGTERM. */
export async function codecServerCommand(flags: CodecServerFlags): Promise<void> {
  const config = configFrom(flags);
  const logger = cliLogger(config, "codec-server");
  const settings = config.security["codec-server"];
  const ring = loadKeyRing(config.security.encryption);
  if (!ring) throw new UsageError("sage codec-server needs the encryption keys: set security.encryption.keys-file or security.encryption.keys-env");
  const tokenFile = flags.tokenFile ?? settings["token-file"];
  const origins = corsOrigins(config, flags);
  const server = await startCodecServer({
    codec: new AesGcmCodec(ring),
    port: portOf(flags.port, settings.port),
    host: flags.host ?? settings.host,
    corsOrigins: origins,
    token: tokenFile ? readToken(tokenFile) : null,
    logger,
  });
  process.stderr.write(
    `codec server at ${server.url} (keys of ${ring.source}, active "${ring.active.id}"; ${tokenFile ? "bearer token required" : "no token asked"}; ` +
      `CORS for ${origins.length ? origins.join(", ") : "no origin: set --cors-origin"})\n` +
      `Web UI: set the codec endpoint to ${server.url} (its codec settings, or the dev server's --ui-codec-endpoint); ` +
      `temporal CLI: --codec-endpoint ${server.url}${tokenFile ? ' --codec-auth "Bearer <token>"' : ""}\n`,
  );
  await new Promise<void>((done) => {
    process.once("SIGINT", done);
    process.once("SIGTERM", done);
  });
  await server.close();
}
