/**
 * A real Prometheus for the metrics test (Debian's package, scripts/install-prometheus.sh): its own
 * config and data in a temp dir, a free port, a 1 s scrape interval, and its HTTP API.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { writeFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { stringify } from "yaml";
import { freePort } from "../../dev/temporal-server.js";
import { until } from "./harness.js";

/** A running Prometheus. */
export interface Prometheus {
  readonly url: string;
  /** The value of an instant query's first sample (null when the result is empty). */
  value(query: string): Promise<number | null>;
  /** GETs an API path (`/api/v1/rules`) and returns its `data`. */
  api<T>(path: string): Promise<T>;
  log(): string;
  stop(): Promise<void>;
}

/** Starts Prometheus in `dir` scraping `targets` (scrape job name -> host:port) every second, with `ruleFiles` loaded. */
export async function startPrometheus(dir: string, targets: Record<string, string>, ruleFiles: string[] = []): Promise<Prometheus> {
  mkdirSync(join(dir, "data"), { recursive: true });
  const config = {
    global: { scrape_interval: "1s", evaluation_interval: "1s", scrape_timeout: "1s" },
    rule_files: ruleFiles,
    scrape_configs: Object.entries(targets).map(([job, target]) => ({ job_name: job, static_configs: [{ targets: [target] }] })),
  };
  writeFileSync(join(dir, "prometheus.yml"), stringify(config));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child: ChildProcess = spawn(
    "prometheus",
    [`--config.file=${join(dir, "prometheus.yml")}`, `--storage.tsdb.path=${join(dir, "data")}`, `--web.listen-address=127.0.0.1:${port}`, "--log.level=warn"],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let output = "";
  child.stdout?.on("data", (d: Buffer) => (output += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (output += d.toString()));
  const exited = new Promise<void>((done) => child.once("exit", () => done()));
  const failedToStart = new Promise<never>((_, fail) =>
    child.once("error", (err) => fail(new Error(`prometheus did not start (scripts/install-prometheus.sh installs it): ${err.message}`))),
  );
  const api = async <T>(path: string): Promise<T> => {
    const body = (await (await fetch(`${url}${path}`)).json()) as { status: string; data: T; error?: string };
    if (body.status !== "success") throw new Error(`prometheus ${path}: ${body.error ?? body.status}`);
    return body.data;
  };
  const prometheus: Prometheus = {
    url,
    api,
    async value(query) {
      const data = await api<{ result: Array<{ value: [number, string] }> }>(`/api/v1/query?query=${encodeURIComponent(query)}`);
      return data.result[0] ? Number(data.result[0].value[1]) : null;
    },
    log: () => output,
    async stop() {
      if (child.pid === undefined) return;
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      await exited;
    },
  };
  try {
    await Promise.race([failedToStart, until("prometheus to be ready", async () => ((await fetch(`${url}/-/ready`)).ok ? true : undefined), 30_000)]);
  } catch (err) {
    await prometheus.stop();
    throw new Error(`${(err as Error).message}\nprometheus output:\n${output}`);
  }
  return prometheus;
}
