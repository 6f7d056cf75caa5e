/**
 * Configuration after the SAGE Core tuning YAML (`execution.parallelism`, `execution.buffer-timeout`,
 * ...) plus the Temporal connection. Validated once at the edge; the rest of the program gets a
 * typed `SageConfig` and never re-checks. Only keys something reads are accepted: the SAGE Core
 * YAML's `execution.mode` comes back when something uses it.
 */
import { z } from "zod";
import { ConfigError } from "../errors.js";
import { refuseKeyMaterial } from "./key-material.js";

const UNITS_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };
const UNITS_BYTES: Record<string, number> = { b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3 };

function withUnits(units: Record<string, number>, what: string) {
  return z.union([z.number(), z.string()]).transform((value, ctx) => {
    if (typeof value === "number") {
      if (Number.isFinite(value) && value >= 0) return value;
    } else {
      const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(value);
      const unit = (m?.[2] ?? "").toLowerCase() || Object.keys(units)[0]!;
      const factor = units[unit];
      if (m && factor !== undefined) return Math.round(Number(m[1]) * factor);
    }
    ctx.addIssue({
      code: "custom",
      message: `expected ${what} such as ${Object.keys(units)
        .map((u) => `10${u}`)
        .join(", ")}`,
    });
    return z.NEVER;
  });
}
const duration = withUnits(UNITS_MS, "a duration");
const bytes = withUnits(UNITS_BYTES, "a size");
const positiveInt = z.coerce.number().int().positive();
const port = z.coerce.number().int().min(0).max(65535);
const bool = z.union([z.boolean(), z.enum(["true", "false"]).transform((v) => v === "true")]);

/** A number for an alert threshold, e.g. `1000`: text that is not a number is an error naming its key. */
function threshold(what: string) {
  return z.union([z.number(), z.string()]).transform((value, ctx) => {
    const n = typeof value === "number" ? value : value.trim() === "" ? NaN : Number(value);
    if (Number.isFinite(n) && n >= 0) return n;
    ctx.addIssue({ code: "custom", message: `expected a number of ${what} (0 or more), such as 1000` });
    return z.NEVER;
  });
}

/** Spend limits of one budget scope (0 = no limit). */
const budgetLimits = z
  .object({
    "tokens-per-minute": z.coerce.number().nonnegative().default(0),
    "dollars-per-hour": z.coerce.number().nonnegative().default(0),
    "dollars-total": z.coerce.number().nonnegative().default(0),
  })
  .strict();

/** The schema of `sage.config.yaml` (all keys optional; defaults applied). */
export const configSchema = z
  .object({
    execution: z
      .object({
        parallelism: positiveInt.default(2),
        "buffer-timeout": duration.default(50),
        fusion: bool.default(true),
        "split-bytes": bytes.default(4 * 1024 * 1024),
        /** Splits a source stage keeps queued per parallel slot beyond those running (hides the round trip to the next split). */
        "split-prefetch": z.coerce.number().int().min(0).default(1),
        "max-batch-bytes": bytes.default(512 * 1024),
        /**
         * Per-record lineage of bounded jobs' file outputs: each staged shard gets a sidecar (per
         * line, the source byte range or index; the run, attempt and model calls), kept at commit
         * under `<data-dir>/lineage`; `sage lineage <job> <path>:<line>` reads it. Cost in bench/RESULTS.md.
         */
        lineage: bool.default(true),
      })
      .strict()
      .prefault({}),
    state: z
      .object({
        /**
         * A streaming partition workflow checkpoints (continues as new, carrying its offsets,
         * watermarks, timers and state positions, never the state) at least this often, besides
         * the history budgets (`kafka.events-per-run`); 0: only by the budgets.
         */
        "checkpoint-interval": duration.default(0),
        /** Where a worker keeps its copy of keyed streaming state: `memory` (a map) or `embedded` (an on-disk store, for state larger than memory). */
        backend: z.enum(["memory", "embedded"]).default("memory"),
        /** The embedded stores' directory (one store per changelog topic and partition); one per worker process. */
        dir: z.string().min(1).default(".sage/state"),
        /** An embedded store left on disk by an earlier worker process is reopened and caught up from the changelog's tail, not rebuilt. */
        "local-recovery": bool.default(true),
      })
      .strict()
      .prefault({}),
    temporal: z
      .object({
        address: z.string().min(1).default("127.0.0.1:7233"),
        namespace: z.string().min(1).default("default"),
        "task-queue": z.string().min(1).optional(),
        "ui-port": port.default(8233),
        "ui-address": z.string().optional(),
        binary: z.string().optional(),
        "api-key": z.string().optional(),
        tls: z
          .object({
            /** Unset: TLS when a CA, a client certificate or an API key is configured; `false` keeps plaintext even with an API key. */
            enabled: bool.optional(),
            "server-name": z.string().optional(),
            ca: z.string().optional(),
            cert: z.string().optional(),
            key: z.string().optional(),
          })
          .strict()
          .prefault({}),
        "activity-timeout": duration.default(10 * 60_000),
        "heartbeat-timeout": duration.default(10_000),
      })
      .strict()
      .prefault({}),
    worker: z
      .object({
        /**
         * Activity slots per worker process; unset: the machine's cores (`os.availableParallelism()`,
         * resolved by the worker: `core/` has no Node built-ins). One per stage thread keeps every
         * thread busy; more lets one worker take every split in flight while a second one idles
         * (bench/bounded with 2 workers showed it).
         */
        "max-concurrent-activities": positiveInt.optional(),
        /**
         * Worker threads that run CPU-bound stage work (a bounded stage's fused chain over a split or
         * an edge batch); unset: the machine's cores. 0 or 1: off, every stage runs on the main thread.
         */
        threads: z.coerce.number().int().min(0).optional(),
        /**
         * Streaming jobs too: a source stage of stateless operators runs each unit's chain on a
         * stage thread over the unit's batches, and the main thread keeps the Kafka transaction and
         * sends the unit's outputs ahead into it while the chain runs (`kafka.send-ahead`). On 2
         * cores its throughput was level with the main thread's at 1, 2 and 4 partition workflows,
         * its p99 at 10k records/s lower, and the main thread's CPU a third less (bench/RESULTS.md,
         * 2026-12-04 19:18). False: every streaming stage on the main thread.
         */
        "stream-threads": bool.default(true),
        /**
         * With `kafka.local-activities: false`, each worker also polls a task queue of its own, and a
         * partition workflow sends a keyed stage's next unit there: to the worker that holds the
         * state current (Temporal's worker-specific task queues). False: any worker, which then
         * rebuilds the state whenever the unit lands on another worker than the last one.
         */
        "own-queue": bool.default(true),
      })
      .strict()
      .prefault({}),
    kafka: z
      .object({
        /** Comma-separated bootstrap servers. */
        brokers: z.string().min(1).default("127.0.0.1:9092"),
        "client-id": z.string().min(1).default("sage"),
        /**
         * The Kafka client library: `kafkajs` (pure JavaScript) or `confluent`
         * (@confluentinc/kafka-javascript over librdkafka; its native binding is built by
         * scripts/install-confluent-kafka.sh). Both implement the same interface and pass the same
         * exactly-once and fault tests.
         */
        client: z.enum(["kafkajs", "confluent"]).default("kafkajs"),
        /** Most records in one micro-batch (bytes are capped by execution.max-batch-bytes, time by execution.buffer-timeout). */
        "max-batch-records": positiveInt.default(2000),
        /**
         * Batches a partition workflow may hold unprocessed before the shim stops feeding it (backpressure).
         * The shim learns the true count only from a query, which can take over a second on a busy
         * workflow: a small limit is reached between queries and stalls the fetch loop; 64 is four
         * merged activities' worth (bench/kafka.ts --latency-only measures the effect).
         */
        "max-unacked-batches": positiveInt.default(64),
        /**
         * Streaming stages run as local activities in the partition workflow's worker: no activity
         * task to schedule, dispatch and complete per batch, one workflow task per batch run. The
         * Kafka transaction keeps output exactly once when a worker dies mid-batch (the next worker
         * runs the batch again after the workflow task timeout). Lower latency and about half the
         * history per record (bench/kafka.ts).
         * A progress query (`sage status`, the shim's backpressure) can wait for the batch running in
         * the workflow task: with slow stages (model calls) turn this off if queries must answer fast.
         * The broker kill -9 test once wrote a batch twice with it; the cause was in the sink, not
         * here (a hanging transaction after the crash, see CHANGELOG), and is fixed there.
         */
        "local-activities": bool.default(true),
        /**
         * History events after which a partition workflow checkpoints (continues as new). The run
         * reports it in its progress; the shim holds that workflow's batches, says so with a hold
         * signal, and lets them go once the new run is current. Without the hold, a
         * signal landing while the run closes makes the server refuse the close and the worker
         * replay the whole run, stalling every batch for seconds. No hold within 2x the budget
         * (no shim, an older shim): the run closes anyway. A checkpoint holds a workflow's batches
         * briefly, so checkpoints too often set the latency p99, and too seldom make a restarted
         * worker replay a long run (it replays at most the current one); `bench/kafka.ts
         * --latency-only` compares budgets.
         */
        "events-per-run": positiveInt.default(2000),
        /**
         * History bytes after which a partition workflow checkpoints the same way. Under the
         * server's own suggestion (4 MiB by default): that one closes the run without a hold.
         */
        "history-bytes-per-run": bytes.default(2 * 1024 * 1024),
        "session-timeout": duration.default(10_000),
        /**
         * A streaming job whose source or Kafka-sink topic does not exist is refused before it
         * starts, naming the topic and its operator (as Kafka Streams does). With this on, the shim
         * creates such topics instead, with one partition per partition workflow.
         */
        "create-topics": bool.default(false),
        /** Bytes fetched per partition per request by the shim. */
        "fetch-bytes": bytes.default(1024 * 1024),
        /**
         * Output messages per part a streaming unit sends into its transaction while its chain still
         * runs (0: all at the commit). It pays with `worker.stream-threads`: the main thread sends
         * while the thread runs the chain (+21% records/s with one partition workflow). On the main
         * thread alone it is level, the send being CPU on that thread (bench/RESULTS.md, 2026-12-04 16:41).
         */
        "send-ahead": z.coerce.number().int().min(0).default(5_000),
        /** Dead-letter topic of streaming jobs (default `<pipeline>.dlq`). */
        "dead-letter-topic": z.string().optional(),
        /**
         * Per-record lineage: every Kafka output and dead letter carries a `sage-lineage` header
         * (source position and batch id), and each committed batch writes one line (workflow, run,
         * attempt) to the job's lineage topic; `sage lineage` reads them. Its cost is in
         * bench/RESULTS.md.
         */
        lineage: bool.default(true),
        /**
         * With `lineage`: each keyed output (window, aggregate, join pair, keyed process output)
         * also names its own inputs in a `sage-inputs` header, from a summary kept in keyed state
         * (`sage lineage --expand` lists them all). Off by default: it multiplied the keyed engine's
         * CPU by 3.6-4.2 in `bench/keyed-lineage.ts` (bench/RESULTS.md).
         */
        "lineage-inputs": bool.default(false),
        /** Replicas of every topic Sage creates (dead letters, repartition, changelog): 3 on a three-broker cluster. */
        "replication-factor": positiveInt.default(1),
        /** TLS to the brokers: `true` (system CAs), or PEM files (`ca`; `cert` and `key` for a client certificate). */
        ssl: z
          .preprocess(
            (v) => (typeof v === "boolean" || v === "true" || v === "false" ? { enabled: v === true || v === "true" } : v),
            z
              .object({
                enabled: bool.default(false),
                ca: z.string().min(1).optional(),
                cert: z.string().min(1).optional(),
                key: z.string().min(1).optional(),
                "server-name": z.string().min(1).optional(),
              })
              .strict(),
          )
          .prefault({}),
        /**
         * SASL authentication. The password is never read from the config file: from the
         * environment variable named by `password-env` (default SAGE_KAFKA_SASL_PASSWORD) or the
         * file `password-file`.
         */
        sasl: z
          .object({
            mechanism: z.enum(["plain", "scram-sha-256", "scram-sha-512"]).optional(),
            username: z.string().min(1).optional(),
            "password-env": z.string().min(1).optional(),
            "password-file": z.string().min(1).optional(),
          })
          .strict()
          .prefault({}),
      })
      .strict()
      .prefault({}),
    llm: z
      .object({
        /** OpenAI-compatible endpoint (default: OPENAI_BASE_URL, else the local `sage models serve`). */
        "base-url": z.string().url().optional(),
        "api-key": z.string().optional(),
        "chat-model": z.string().min(1).default("smollm2-135m-instruct"),
        "embedding-model": z.string().min(1).default("all-minilm-l6-v2"),
        /** Model name per operator id (overrides the two defaults). */
        models: z.record(z.string(), z.string().min(1)).default({}),
        /** Price per million tokens by model, for the estimated cost in `sage status`. */
        prices: z.record(z.string(), z.object({ input: z.number().nonnegative(), output: z.number().nonnegative().default(0) }).strict()).default({}),
        /** Requests and tokens per minute of each model not named in `limits`, shared by the operators of a worker (0 = no limit). */
        "requests-per-minute": z.coerce.number().nonnegative().default(0),
        "tokens-per-minute": z.coerce.number().nonnegative().default(0),
        /** Requests and tokens per minute by model name; an unset one falls back to the global value. */
        limits: z
          .record(
            z.string(),
            z
              .object({
                "requests-per-minute": z.coerce.number().nonnegative().optional(),
                "tokens-per-minute": z.coerce.number().nonnegative().optional(),
              })
              .strict(),
          )
          .default({}),
        /**
         * Spend limits of a job and of a pipeline (all its jobs on this data dir), kept in a durable
         * ledger under the data dir (0 = no limit); a model call that would cross one follows `policy`.
         */
        budget: z
          .object({
            job: budgetLimits.prefault({}),
            pipeline: budgetLimits.prefault({}),
            /**
             * What a call that would cross a limit does. `dead-letter`: its record goes to the dead
             * letters, "llm budget exceeded: ...". `pause`: the stage unit waits on a durable workflow
             * timer until the window frees enough (a `dollars-total` limit never frees: dead letter).
             * `downgrade`: a chat call goes to `downgrade-to` instead, and its output record says so
             * in `llmDowngraded`; if that call would cross a limit too, dead letter.
             */
            policy: z.enum(["dead-letter", "pause", "downgrade"]).default("dead-letter"),
            /** The cheaper chat model of the `downgrade` policy (priced by `llm.prices` like any model). */
            "downgrade-to": z.string().min(1).optional(),
          })
          .strict()
          .superRefine((b, ctx) => {
            if (b.policy === "downgrade" && b["downgrade-to"] === undefined) {
              ctx.addIssue({
                code: "custom",
                path: ["downgrade-to"],
                message: "policy downgrade needs the cheaper chat model to route to: set llm.budget.downgrade-to",
              });
            }
          })
          .prefault({}),
        /** Response cache under the data dir, keyed by the request's hash. */
        cache: bool.default(true),
        /** Budget of one model call. */
        timeout: duration.default(120_000),
        /** Tries of a call inside the activity (429 after its Retry-After, 5xx after a backoff) before the activity fails and Temporal retries it. */
        "max-tries": positiveInt.default(3),
        /** Longest Retry-After waited inside the activity (heartbeating); longer ones go to Temporal's retry. */
        "max-retry-after": duration.default(30_000),
      })
      .strict()
      .prefault({}),
    "data-dir": z.string().min(1).default(".sage"),
    "dead-letter": z.object({ path: z.string().optional() }).strict().prefault({}),
    /**
     * `sage whatif`: streaming jobs' workers keep a copy of each committed source batch under
     * `<data-dir>/whatif/retain`, bounded per source partition by total size (`bytes`) and age
     * (`age`), so a range Kafka no longer holds can still be re-run. 0 and 0 (the default): no copy.
     */
    whatif: z
      .object({
        retain: z
          .object({ bytes: bytes.default(0), age: duration.default(0) })
          .strict()
          .prefault({}),
      })
      .strict()
      .prefault({}),
    log: z
      .object({ level: z.enum(["trace", "debug", "info", "warn", "error", "fatal", "silent"]).default("info") })
      .strict()
      .prefault({}),
    monitoring: z
      .object({
        /** Every worker and shim serves Prometheus `/metrics` (and the SDK's exporter); false: neither. */
        enabled: bool.default(true),
        /** Address the endpoints listen on (0.0.0.0 for a Prometheus on another machine). */
        host: z.string().min(1).default("127.0.0.1"),
        /** Port of `/metrics` (the SAGE Core design's 9091); 0: any free port, logged. */
        port: port.default(9091),
        /** The port is taken (a second worker or shim on the machine): `fail` with a message naming it, or take the `next` free one (logged). */
        "port-in-use": z.enum(["fail", "next"]).default("fail"),
        /** The Temporal SDK's own worker metrics on a port of their own (workers only). */
        "sdk-metrics": bool.default(true),
        /** Port of the SDK's exporter (default: the `/metrics` port + 1000, so 10091). */
        "sdk-port": port.optional(),
        /** Thresholds of `sage alerts export` (and the dashboard's lines). */
        alerts: z
          .object({
            /** WARNING: a job reads fewer records per second than this for `throughput-for`. */
            "min-throughput": threshold("records per second").default(1000),
            "throughput-for": duration.default(5 * 60_000),
            /** CRITICAL: the p99 of end-to-end latency is over this for `latency-for`. */
            "max-latency-p99": duration.default(500),
            "latency-for": duration.default(2 * 60_000),
            /** WARNING: more dead letters than this in 5 minutes (per operator). */
            "max-dead-letters": threshold("dead letters in 5 minutes").default(0),
            /** WARNING: a job's consumer lag (records not yet processed, over its partitions) is over this for `consumer-lag-for`. */
            "max-consumer-lag": threshold("records").default(100_000),
            "consumer-lag-for": duration.default(5 * 60_000),
            /** CRITICAL: more failed checkpoints than this in 15 minutes. */
            "max-checkpoint-failures": threshold("checkpoint failures in 15 minutes").default(0),
            /** WARNING: estimated LLM spend over this many USD per hour (over the last hour). */
            "max-llm-cost-per-hour": threshold("USD per hour").default(10),
          })
          .strict()
          .prefault({}),
      })
      .strict()
      .prefault({}),
    security: z
      .object({
        /**
         * Payload encryption (AES-256-GCM) of everything the client and the workers write to history,
         * on when a key source is named. Key bytes never sit here (`refuseKeyMaterial`).
         */
        encryption: z
          .object({
            /** File of keys, one `key-id=<base64 of 32 bytes>` per line; the first is the active one unless `active-key` says. */
            "keys-file": z.string().min(1).optional(),
            /** Name of an environment variable holding the keys the same way (entries separated by commas or newlines). */
            "keys-env": z
              .string()
              .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "expected the name of an environment variable")
              .optional(),
            /** Id of the key new payloads are encrypted with; the others only decrypt (rotation). */
            "active-key": z.string().min(1).optional(),
          })
          .strict()
          .prefault({}),
        /** `sage codec-server`: the Web UI's remote codec endpoint. */
        "codec-server": z
          .object({
            port: port.default(8888),
            host: z.string().min(1).default("127.0.0.1"),
            /** Comma-separated origins allowed by CORS (default: the Web UI's address). */
            "cors-origins": z.string().optional(),
            /** File holding the bearer token requests must carry (none: no token asked). */
            "token-file": z.string().min(1).optional(),
          })
          .strict()
          .prefault({}),
      })
      .strict()
      .prefault({}),
  })
  .strict();

/** Typed configuration after validation and defaults. */
export type SageConfig = z.output<typeof configSchema>;

/** Where a configuration value came from, for error messages. */
export type ConfigOrigins = ReadonlyMap<string, string>;

function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let cur = input;
  for (const key of path) cur = cur && typeof cur === "object" ? (cur as Record<PropertyKey, unknown>)[key] : undefined;
  return cur;
}

/**
 * Validates raw configuration. Errors name every bad key, its value, where it came from and what
 * was expected, e.g. `execution.parallelism = "abc" (from sage.config.yaml): expected number`.
 */
export function parseConfig(raw: unknown, origins: ConfigOrigins = new Map()): SageConfig {
  refuseKeyMaterial(raw, origins);
  const result = configSchema.safeParse(raw ?? {});
  if (result.success) return result.data;
  const lines = result.error.issues.flatMap((issue) => {
    if (issue.code === "unrecognized_keys") {
      return issue.keys.map((k) => {
        const key = [...issue.path, k].join(".");
        return `unknown config key "${key}"${origins.has(key) ? ` (from ${origins.get(key)})` : ""}`;
      });
    }
    const key = issue.path.join(".");
    const value = valueAt(raw, issue.path);
    const from = origins.get(key);
    return [`${key} = ${JSON.stringify(value)}${from ? ` (from ${from})` : ""}: ${issue.message}`];
  });
  throw new ConfigError(`invalid configuration:\n  ${lines.join("\n  ")}`);
}

/** Every leaf key of the schema, dotted (`temporal.address`), for env var and flag mapping. */
export const CONFIG_KEYS: readonly string[] = [
  "execution.parallelism",
  "execution.buffer-timeout",
  "execution.fusion",
  "execution.split-bytes",
  "execution.split-prefetch",
  "execution.max-batch-bytes",
  "execution.lineage",
  "state.checkpoint-interval",
  "state.backend",
  "state.dir",
  "state.local-recovery",
  "temporal.address",
  "temporal.namespace",
  "temporal.task-queue",
  "temporal.ui-port",
  "temporal.ui-address",
  "temporal.binary",
  "temporal.api-key",
  "temporal.tls.enabled",
  "temporal.tls.server-name",
  "temporal.tls.ca",
  "temporal.tls.cert",
  "temporal.tls.key",
  "temporal.activity-timeout",
  "temporal.heartbeat-timeout",
  "worker.max-concurrent-activities",
  "worker.threads",
  "worker.stream-threads",
  "worker.own-queue",
  "kafka.brokers",
  "kafka.client-id",
  "kafka.client",
  "kafka.max-batch-records",
  "kafka.max-unacked-batches",
  "kafka.local-activities",
  "kafka.events-per-run",
  "kafka.history-bytes-per-run",
  "kafka.session-timeout",
  "kafka.fetch-bytes",
  "kafka.send-ahead",
  "kafka.create-topics",
  "kafka.dead-letter-topic",
  "kafka.lineage",
  "kafka.lineage-inputs",
  "kafka.replication-factor",
  "kafka.ssl.enabled",
  "kafka.ssl.ca",
  "kafka.ssl.cert",
  "kafka.ssl.key",
  "kafka.ssl.server-name",
  "kafka.sasl.mechanism",
  "kafka.sasl.username",
  "kafka.sasl.password-env",
  "kafka.sasl.password-file",
  "llm.base-url",
  "llm.api-key",
  "llm.chat-model",
  "llm.embedding-model",
  "llm.requests-per-minute",
  "llm.tokens-per-minute",
  "llm.budget.job.tokens-per-minute",
  "llm.budget.job.dollars-per-hour",
  "llm.budget.job.dollars-total",
  "llm.budget.pipeline.tokens-per-minute",
  "llm.budget.pipeline.dollars-per-hour",
  "llm.budget.pipeline.dollars-total",
  "llm.budget.policy",
  "llm.budget.downgrade-to",
  "llm.cache",
  "llm.timeout",
  "llm.max-tries",
  "llm.max-retry-after",
  "data-dir",
  "dead-letter.path",
  "whatif.retain.bytes",
  "whatif.retain.age",
  "log.level",
  "monitoring.enabled",
  "monitoring.host",
  "monitoring.port",
  "monitoring.port-in-use",
  "monitoring.sdk-metrics",
  "monitoring.sdk-port",
  "monitoring.alerts.min-throughput",
  "monitoring.alerts.throughput-for",
  "monitoring.alerts.max-latency-p99",
  "monitoring.alerts.latency-for",
  "monitoring.alerts.max-dead-letters",
  "monitoring.alerts.max-consumer-lag",
  "monitoring.alerts.consumer-lag-for",
  "monitoring.alerts.max-checkpoint-failures",
  "monitoring.alerts.max-llm-cost-per-hour",
  "security.encryption.keys-file",
  "security.encryption.keys-env",
  "security.encryption.active-key",
  "security.codec-server.port",
  "security.codec-server.host",
  "security.codec-server.cors-origins",
  "security.codec-server.token-file",
];

/** The environment variable of a config key: `temporal.task-queue` -> `SAGE_TEMPORAL_TASK_QUEUE`. */
export function envVarOf(key: string): string {
  return `SAGE_${key.toUpperCase().replace(/[.-]/g, "_")}`;
}
