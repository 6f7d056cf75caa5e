/** `sage models serve`: the local OpenAI-compatible model server, in the foreground. */
import { startModelServer } from "../models/openai-server.js";
import { UsageError } from "../core/errors.js";

interface ServeFlags {
  port?: string;
  host?: string;
  modelsDir?: string;
}

/** Default port of the local model server. */
export const DEFAULT_MODELS_PORT = 8089;

/** Serves the local models until SIGINT/SIGTERM. */
export async function modelsServeCommand(flags: ServeFlags): Promise<void> {
  const port = flags.port === undefined ? DEFAULT_MODELS_PORT : Number(flags.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`--port must be a port number (0-65535), got "${flags.port}"`);
  const server = await startModelServer({ port, ...(flags.host ? { host: flags.host } : {}), ...(flags.modelsDir ? { modelsDir: flags.modelsDir } : {}) });
  process.stdout.write(`local model server at ${server.url}/v1 (models: smollm2-135m-instruct, all-minilm-l6-v2)\n`);
  process.stdout.write(`use it with: OPENAI_BASE_URL=${server.url}/v1 OPENAI_API_KEY=local\n`);
  await new Promise<void>((resolve) => {
    process.once("SIGINT", resolve);
    process.once("SIGTERM", resolve);
  });
  await server.close();
}
