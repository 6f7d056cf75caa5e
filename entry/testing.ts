/**
 * `sage-temporal/testing`: a local Temporal dev server and Kafka broker for tests and demos, after
 * `@temporalio/testing`. Nothing here is needed to run a pipeline against an existing cluster.
 *
 * @example
 * ```ts
 * import { startScratchServer } from "sage-temporal/testing";
 *
 * const server = await startScratchServer(".sage/test-server"); // a throwaway dev server on free ports
 * // ... loadConfig({ overrides: { "temporal.address": server.address } }), run a worker and a job ...
 * await server.stop();
 * ```
 */
export { ensureServer as ensureTemporalServer } from "../cli/common.js";
export { startDevServer, startScratchServer, freePort, type DevServer, type DevServerOptions } from "../dev/temporal-server.js";
export {
  startBroker,
  stopBroker,
  startCluster,
  stopCluster,
  type Broker,
  type BrokerOptions,
  type BrokerSecurityOptions,
  type BrokerTlsFiles,
  type Cluster,
  type ClusterOptions,
} from "../dev/kafka-broker.js";
