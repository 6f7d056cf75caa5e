/** `sage dev`: the local Temporal dev server with its Web UI, in the foreground. */
import { readFile, rm } from "node:fs/promises";
import { ServerUnavailableError } from "../core/errors.js";
import { join, resolve } from "node:path";
import { isLocalAddress, isServerUp, startDevServer } from "../dev/temporal-server.js";
import { startBroker, stopBroker, type BrokerOptions } from "../dev/kafka-broker.js";
import { configFrom, devServerFiles, type GlobalFlags } from "./common.js";

interface DevFlags extends GlobalFlags {
  headless?: boolean;
  uiPort?: string;
  stop?: boolean;
  kafka?: boolean;
}

/** Port of a `host:port` broker address (the first of kafka.brokers). */
function brokerPort(brokers: string): number {
  const first = brokers.split(",")[0]!.trim();
  const port = Number(first.slice(first.lastIndexOf(":") + 1));
  if (!isLocalAddress(first) || !Number.isInteger(port))
    throw new ServerUnavailableError(`kafka.brokers = "${brokers}": sage dev --kafka starts a broker on a local address only`);
  return port;
}

/** Stops the dev server `sage run` left running in the background (its pid is in the data dir). */
async function stopBackgroundServer(pidFile: string, address: string): Promise<void> {
  const pid = Number(await readFile(pidFile, "utf8").catch(() => ""));
  if (!Number.isInteger(pid) || pid <= 0) throw new ServerUnavailableError(`no background dev server recorded in ${pidFile}`);
  try {
    process.kill(pid, "SIGTERM");
  } catch {
    await rm(pidFile, { force: true });
    process.stdout.write(`the dev server (pid ${pid}) was not running\n`);
    return;
  }
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline && (await isServerUp(address, 500))) await new Promise((r) => setTimeout(r, 250));
  await rm(pidFile, { force: true });
  process.stdout.write(`stopped the Temporal dev server (pid ${pid}) at ${address}\n`);
}

/** Starts the server, prints where it is, and stops it on SIGINT/SIGTERM; `--stop` stops a background one. */
export async function devCommand(flags: DevFlags): Promise<void> {
  const config = configFrom(flags);
  const kafkaOptions = {
    port: brokerPort(config.kafka.brokers),
    controllerPort: brokerPort(config.kafka.brokers) + 1,
    dataDir: join(resolve(config["data-dir"]), "kafka"),
  };
  if (flags.stop) {
    if (flags.kafka) stopDevBroker(kafkaOptions);
    return stopBackgroundServer(devServerFiles(config).pidFile, config.temporal.address);
  }
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
  const broker = flags.kafka ? startBroker(kafkaOptions, (m) => process.stderr.write(`${m}\n`)) : null;
  if (broker) process.stdout.write(`Kafka broker ready at ${broker.address} (data ${broker.dataDir})\n`);
  process.stdout.write("press Ctrl-C to stop\n");
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
  broker?.stop();
  await server.stop();
}

/** Stops the broker `sage dev --kafka` started (clean shutdown). */
function stopDevBroker(options: BrokerOptions): void {
  stopBroker(options, (m) => process.stdout.write(`${m}\n`));
}
