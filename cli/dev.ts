/** `sage dev`: the local Temporal dev server with its Web UI, in the foreground. */
import { readFile, rm } from "node:fs/promises";
import { ServerUnavailableError, UsageError } from "../core/errors.js";
import { join, resolve } from "node:path";
import { isLocalAddress, isServerUp, startDevServer } from "../dev/temporal-server.js";
import { startCluster, stopCluster, type ClusterOptions } from "../dev/kafka-broker.js";
import { configFrom, devServerFiles, type GlobalFlags } from "./common.js";

interface DevFlags extends GlobalFlags {
  headless?: boolean;
  uiPort?: string;
  stop?: boolean;
  kafka?: boolean;
  brokers?: string;
}

/** Port of a local `host:port` broker address. */
function brokerPort(brokers: string, address: string): number {
  const port = Number(address.slice(address.lastIndexOf(":") + 1));
  if (!isLocalAddress(address) || !Number.isInteger(port))
    throw new ServerUnavailableError(`kafka.brokers = "${brokers}": sage dev --kafka starts brokers on local addresses only`);
  return port;
}

/**
 * Ports of the `count` brokers `sage dev --kafka` starts: those kafka.brokers lists when it lists
 * `count`, else the first one's and the next even ports (9092, 9094, 9096); each node's controller
 * listens on its port + 1.
 */
export function devClusterOf(brokers: string, count: number, dataDir: string): ClusterOptions {
  if (!Number.isInteger(count) || count < 1) throw new UsageError(`--brokers ${count}: expected a number of brokers, 1 or more`);
  const listed = brokers
    .split(",")
    .map((b) => b.trim())
    .filter(Boolean);
  const first = brokerPort(brokers, listed[0] ?? "");
  const ports = listed.length === count ? listed.map((b) => brokerPort(brokers, b)) : Array.from({ length: count }, (_, i) => first + 2 * i);
  return { ports, controllerPorts: ports.map((p) => p + 1), dataDir };
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
  const kafkaOptions = devClusterOf(config.kafka.brokers, Number(flags.brokers ?? 1), join(resolve(config["data-dir"]), "kafka"));
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
  const cluster = flags.kafka ? startCluster(kafkaOptions, (m) => process.stderr.write(`${m}\n`)) : null;
  if (cluster?.nodes.length === 1) process.stdout.write(`Kafka broker ready at ${cluster.brokers} (data ${kafkaOptions.dataDir})\n`);
  else if (cluster) {
    const rf = Math.min(3, cluster.nodes.length);
    process.stdout.write(
      `Kafka cluster of ${cluster.nodes.length} brokers ready at ${cluster.brokers} (data ${kafkaOptions.dataDir}): ` +
        `run jobs with kafka.brokers=${cluster.brokers} and kafka.replication-factor=${rf}\n`,
    );
  }
  process.stdout.write("press Ctrl-C to stop\n");
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
  cluster?.stop();
  await server.stop();
}

/** Stops the brokers `sage dev --kafka` started (clean shutdown). */
function stopDevBroker(options: ClusterOptions): void {
  stopCluster(options, (m) => process.stdout.write(`${m}\n`));
}
