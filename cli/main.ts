/** The `sage` command line: plan, run, worker, status, stop, savepoint, dev, replay, rerun, dlq, ... */
import { Command, Option } from "commander";
import type { SavepointFlags } from "./savepoint.js";
import { SageError } from "../core/errors.js";

/**
 * A command's action, loaded when the command runs: `sage plan` or `sage status` never loads the
 * Temporal worker, Kafka or the model server (a CLI started 3.7 s of CPU when it loaded them all).
 */
function lazy<A extends unknown[]>(load: () => Promise<(...args: A) => unknown>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    const action = await load();
    await action(...args);
  };
}

/** Collects a repeatable option's values. */
function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

const program = new Command("sage").description("Sage on Temporal: typed dataflow pipelines run as durable Temporal workflows").showHelpAfterError();

function withGlobals(cmd: Command): Command {
  return cmd
    .option("--config <file>", "config file (default ./sage.config.yaml if present)")
    .option("--address <host:port>", "Temporal server address (temporal.address)")
    .option("--namespace <ns>", "Temporal namespace (temporal.namespace)")
    .option("--task-queue <name>", "task queue (temporal.task-queue; default sage-<pipeline>)")
    .option("--data-dir <dir>", "runtime data folder (data-dir; default .sage)")
    .addOption(new Option("--log-level <level>", "log level").choices(["trace", "debug", "info", "warn", "error", "fatal", "silent"]));
}

withGlobals(program.command("plan <module>"))
  .description("print the logical graph, the fused physical plan and the plan hash")
  .addOption(new Option("--format <format>", "output format").choices(["text", "mermaid", "dot", "json"]).default("text"))
  .option("--pipeline <name>", "which pipeline, if the module exports several")
  .option("--parallelism <n>", "job parallelism (execution.parallelism)")
  .option("--no-fusion", "turn operator fusion off")
  .action(lazy(() => import("./inspect.js").then((m) => m.planCommand)));

withGlobals(program.command("run <module>"))
  .description("run a pipeline: start (or reuse) the dev server and a worker, submit, follow, summarize")
  .option("--job-id <id>", "job id (default: a timestamp)")
  .option("--param <name=value>", "job parameter (repeatable)", collect, [])
  .option("--pipeline <name>", "which pipeline, if the module exports several")
  .option("--parallelism <n>", "job parallelism (execution.parallelism)")
  .option("--no-fusion", "turn operator fusion off")
  .option("--no-worker", "do not start a worker in this process")
  .option("--json", "print the result as JSON")
  .option("--metrics-port <port>", "port of its Prometheus /metrics (monitoring.port, default 9091)")
  .option("--from-savepoint <savepoint>", "streaming: start a new job from this savepoint (its id, or a path), at this parallelism")
  .option("--allow-non-restored-state", "with --from-savepoint: drop the state of operators the pipeline no longer has")
  .action(lazy(() => import("./run.js").then((m) => m.runCommand)));

withGlobals(program.command("worker <module>"))
  .description("serve a pipeline's workflows and activities on its task queue until interrupted")
  .option("--pipeline <name>", "which pipeline, if the module exports several")
  .option("--parallelism <n>", "job parallelism the worker compiles for (execution.parallelism)")
  .option("--metrics-port <port>", "port of its Prometheus /metrics (monitoring.port, default 9091)")
  .action(lazy(() => import("./run.js").then((m) => m.workerCommand)));

withGlobals(program.command("status [jobId]"))
  .description("list jobs, or show one job's progress or result")
  .option("--pipeline <name>", "only jobs of this pipeline")
  .option("--json", "print JSON")
  .action(lazy(() => import("./inspect.js").then((m) => m.statusCommand)));

withGlobals(program.command("stop <jobId>"))
  .description("stop a streaming job cleanly (by job id or pipeline: last batches committed, shim drained), or cancel a bounded job")
  .option("--savepoint", "take a savepoint and stop the job under it: nothing after the savepoint is committed")
  .option("--dir <dir>", "with --savepoint: the savepoint directory (default <data-dir>/savepoints)")
  .option("--json", "with --savepoint: print the savepoint as JSON")
  .action(lazy(() => import("./inspect.js").then((m) => m.stopCommand)));

// Its --dir and --json are the subcommands' too (the parent parses them wherever they stand): they read optsWithGlobals.
const savepoint = withGlobals(program.command("savepoint"))
  .description("savepoints of streaming jobs: `sage savepoint <job>` takes one while the job runs; list, show and rm manage them")
  .argument("[job]", "the running streaming job (job id or pipeline) to take a savepoint of")
  .option("--dir <dir>", "the savepoint directory (default <data-dir>/savepoints)")
  .option("--json", "print JSON")
  .action((job: string | undefined, flags: SavepointFlags) => {
    if (!job) return savepoint.help({ error: true });
    return import("./savepoint.js").then((m) => m.savepointCommand(job, flags));
  });
withGlobals(savepoint.command("list"))
  .description("the savepoints in the directory")
  .option("--dir <dir>", "the savepoint directory (default <data-dir>/savepoints)")
  .option("--json", "print JSON")
  .action((_flags: SavepointFlags, cmd: Command) => import("./savepoint.js").then((m) => m.savepointListCommand(cmd.optsWithGlobals())));
withGlobals(savepoint.command("show <savepoint>"))
  .description("a savepoint's manifest: job, plan, operators with their key groups and sizes, source offsets (by id, or a path)")
  .option("--dir <dir>", "the savepoint directory (default <data-dir>/savepoints)")
  .option("--json", "print the whole manifest")
  .action((ref: string, _flags: SavepointFlags, cmd: Command) => import("./savepoint.js").then((m) => m.savepointShowCommand(ref, cmd.optsWithGlobals())));
withGlobals(savepoint.command("rm <savepoint>"))
  .description("delete a savepoint (by id, or a path)")
  .option("--dir <dir>", "the savepoint directory (default <data-dir>/savepoints)")
  .action((ref: string, _flags: SavepointFlags, cmd: Command) => import("./savepoint.js").then((m) => m.savepointRemoveCommand(ref, cmd.optsWithGlobals())));

withGlobals(program.command("shim <module>"))
  .description("feed a streaming pipeline's job from Kafka (micro-batches as signals) until the job stops or this process is interrupted")
  .option("--job-id <id>", "job id (default: the source's consumer group, so a restarted shim finds its job)")
  .option("--param <name=value>", "job parameter (repeatable)", collect, [])
  .option("--pipeline <name>", "which pipeline, if the module exports several")
  .option("--parallelism <n>", "partition workflows (execution.parallelism)")
  .option("--no-fusion", "turn operator fusion off")
  .option("--metrics-port <port>", "port of its Prometheus /metrics (monitoring.port, default 9091)")
  .option("--from-savepoint <savepoint>", "streaming: start a new job from this savepoint (its id, or a path), at this parallelism")
  .option("--allow-non-restored-state", "with --from-savepoint: drop the state of operators the pipeline no longer has")
  .action(lazy(() => import("./stream.js").then((m) => m.shimCommand)));

withGlobals(program.command("dev"))
  .description("run the local Temporal dev server with its Web UI in the foreground")
  .option("--headless", "without the Web UI")
  .option("--ui-port <port>", "Web UI port (temporal.ui-port)")
  .option("--stop", "stop the dev server that `sage run` started in the background (with --kafka: the broker too)")
  .option("--kafka", "also start a single-node Kafka broker (kafka.brokers, default 127.0.0.1:9092; jars fetched on first use)")
  .option(
    "--brokers <n>",
    "with --kafka: a cluster of n KRaft brokers (3: replication factor 3, min.insync.replicas 2) on the ports of kafka.brokers, or 9092, 9094, ...",
  )
  .action(lazy(() => import("./dev.js").then((m) => m.devCommand)));

withGlobals(program.command("replay [workflowId]"))
  .description("replay recorded histories against today's workflow code (determinism check)")
  .option("--failed", "replay every failed run (of --pipeline, if given)")
  .option("--pipeline <name>", "with --failed: only this pipeline")
  .option("--file <history.json>", "replay a history file")
  .option("--workflows <path>", "replay against another workflow entry point (to test a change)")
  .option("--json", "print JSON")
  .action(lazy(() => import("./history.js").then((m) => m.replayCommand)));

withGlobals(program.command("rerun <workflowId>"))
  .description("run a failed or terminated job again, reusing the splits it completed")
  .option("--module <module>", "also start a worker for this pipeline module in this process")
  .option("--recorded", "run the job again (finished or failed) as a new job using only its recorded model answers: no model calls")
  .option("--json", "print the result as JSON")
  .action(lazy(() => import("./history.js").then((m) => m.rerunCommand)));

withGlobals(program.command("index <docs-folder>"))
  .description("chunk and embed the .md/.txt files of a folder (a bounded job) into a LanceDB vector index")
  .option("--index <dir>", "index folder (default <data-dir>/index/docs)")
  .option("--job-id <id>", "job id (default: a timestamp)")
  .action(lazy(() => import("./index-docs.js").then((m) => m.indexCommand)));

withGlobals(program.command("codec-server"))
  .description("serve the payload encryption codec (POST /encode, /decode) to the Temporal Web UI and CLI until interrupted")
  .option("--port <port>", "port (security.codec-server.port, default 8888; 0 = any free port)")
  .option("--host <host>", "address to listen on (security.codec-server.host, default 127.0.0.1)")
  .option("--token-file <file>", "require Authorization: Bearer <the token in this file> (security.codec-server.token-file)")
  .option("--cors-origin <origin>", "browser origin allowed to call it (repeatable; default the Web UI's address)", collect, [])
  .action(lazy(() => import("./codec-server.js").then((m) => m.codecServerCommand)));

const alerts = program.command("alerts").description("Prometheus alert rules over Sage's metrics");
withGlobals(alerts.command("export"))
  .description("write the alert rules (throughput, p99 latency, dead letters, consumer lag, checkpoint failures, LLM spend; thresholds: monitoring.alerts.*)")
  .option("--out <file>", "write to this file (default: stdout)")
  .action(lazy(() => import("./monitoring.js").then((m) => m.alertsExportCommand)));

const dashboards = program.command("dashboard").description("a Grafana dashboard over Sage's metrics");
withGlobals(dashboards.command("export"))
  .description("write the dashboard JSON (import it in Grafana; pick the Prometheus data source)")
  .option("--out <file>", "write to this file (default: stdout)")
  .action(lazy(() => import("./monitoring.js").then((m) => m.dashboardExportCommand)));

const dlq = program.command("dlq").description("a job's dead letters: list them, show them, re-drive them exactly once");
withGlobals(dlq.command("list <job>"))
  .description("the job's outstanding dead letters grouped by operator and error (a bounded job's file, or a streaming job's topic read_committed)")
  .option("--operator <id>", "only this operator's")
  .option("--error <text>", "only those whose error contains this text")
  .option("--all", "also those a redrive already took")
  .option("--json", "print JSON")
  .action(lazy(() => import("./dlq.js").then((m) => m.dlqListCommand)));
withGlobals(dlq.command("show <job>"))
  .description("the dead letters one by one: reason, operator, source position, tries and history, the record")
  .option("--operator <id>", "only this operator's")
  .option("--error <text>", "only those whose error contains this text")
  .option("--limit <n>", "show at most this many (default 20)")
  .option("--all", "also those a redrive already took")
  .option("--json", "print JSON")
  .action(lazy(() => import("./dlq.js").then((m) => m.dlqShowCommand)));
withGlobals(dlq.command("redrive <job>"))
  .description("send the selected dead letters back through the job (or a fixed version of its module), each into the operator it failed in, exactly once")
  .option("--operator <id>", "only this operator's")
  .option("--error <text>", "only those whose error contains this text")
  .option("--module <module>", "the pipeline module to re-drive through: bounded, served by a worker in this process; streaming, the running job of its plan")
  .option(
    "--redrive-id <id>",
    "name of this redrive (default: from the job, the filter and the plan or job re-driven through; the same id resumes, never repeats)",
  )
  .option("--json", "print JSON")
  .action(lazy(() => import("./dlq-redrive.js").then((m) => m.dlqRedriveCommand)));

withGlobals(program.command("lineage <job> <output>"))
  .description(
    "where an output record (topic[partition]@offset, a dead letter too) of a streaming job, or a line (path:line) of a bounded job's file output, came from: source position, batch, run, attempt, model calls",
  )
  .option("--json", "print JSON")
  .option("--expand", "a keyed output (window, aggregate, join): list every input, not only the summary")
  .action(lazy(() => import("./lineage.js").then((m) => m.lineageCommand)));

withGlobals(program.command("whatif <job>"))
  .description("re-run a job's recorded input through a changed pipeline in process (no real sink written) and diff the outputs per record")
  .requiredOption("--module <module>", "the changed pipeline module")
  .option("--base <module>", "the module the job runs, re-run as the base (plan hash checked); default: the outputs the job wrote")
  .option("--pipeline <name>", "which pipeline, if the modules export several")
  .option("--from <from>", "start of the range: partition:offset[,...] (or topic:partition:offset), or an ISO time (default: the first offset Kafka holds)")
  .option("--to <to>", "end of the range, not included: offsets or an ISO time as for --from (default: the end of each partition)")
  .option("--out <file>", "also write the diff as JSON Lines")
  .option("--batch <n>", "most source records per unit where the job's lineage does not say how it cut its batches (default kafka.max-batch-records)")
  .option("--no-memo", "run every stage again, reusing no memoized stage output")
  .option("--json", "print JSON")
  .action(lazy(() => import("./whatif.js").then((m) => m.whatifCommand)));

program
  .command("models")
  .description("local models")
  .command("serve")
  .description("serve the local models (scripts/install-models.sh) over an OpenAI-compatible API until interrupted")
  .option("--port <port>", "port (default 8089; 0 = any free port)")
  .option("--host <host>", "address to listen on (default 127.0.0.1)")
  .option("--models-dir <dir>", "where the model files are (default .tools/models)")
  .action(lazy(() => import("./models.js").then((m) => m.modelsServeCommand)));

try {
  await program.parseAsync(process.argv);
} catch (err) {
  const e = err instanceof Error ? err : new Error(String(err));
  // A TypeError or the like is a bug, not the user's doing: its name says so.
  process.stderr.write(`sage: ${e instanceof SageError || e.name === "Error" ? e.message : `${e.name}: ${e.message}`}\n`);
  if (process.env.SAGE_DEBUG) process.stderr.write(`${e.stack}\n`);
  // An error in what the user gave (flags, configuration, pipeline, parameters, job id) exits 2, as a usage error does.
  process.exitCode = e instanceof SageError && e.input ? 2 : 1;
}
