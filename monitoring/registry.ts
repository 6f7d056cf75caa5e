/** The one Prometheus registry of a process (a worker and a shim in one process share it), with the process metrics. */
import { Registry, collectDefaultMetrics } from "prom-client";
import { PROCESS_PREFIX } from "./names.js";

/** The registry every Sage metric of this process lives in. */
export const metricsRegistry = new Registry();
collectDefaultMetrics({ register: metricsRegistry, prefix: PROCESS_PREFIX });
