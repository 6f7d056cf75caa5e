/** `sage dev`: the local Temporal dev server with its Web UI, in the foreground. */
import { ServerUnavailableError } from "../../core/errors.js";
import { isServerUp, startDevServer } from "../dev-server.js";
import { configFrom, devServerFiles, type GlobalFlags } from "./common.js";

interface DevFlags extends GlobalFlags {
  headless?: boolean;
  uiPort?: string;
}

/** Starts the server, prints where it is, and stops it on SIGINT/SIGTERM. */
export async function devCommand(flags: DevFlags): Promise<void> {
  const config = configFrom(flags);
  const address = config.temporal.address;
  if (await isServerUp(address)) throw new ServerUnavailableError(`a Temporal server already answers at ${address}; use it, or pick another --address`);
  const files = devServerFiles(config);
  const uiPort = flags.uiPort ? Number(flags.uiPort) : config.temporal["ui-port"];
  const server = await startDevServer({
    address,
    uiPort,
    dbFile: files.dbFile,
    logFile: files.logFile,
    headless: flags.headless ?? false,
    ...(config.temporal.binary ? { binary: config.temporal.binary } : {}),
    log: (m) => process.stderr.write(`${m}\n`),
  });
  process.stdout.write(`Temporal dev server ready at ${address} (database ${files.dbFile})\n`);
  if (server.uiUrl) process.stdout.write(`Web UI: ${server.uiUrl}\n`);
  process.stdout.write("press Ctrl-C to stop\n");
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
  await server.stop();
}
