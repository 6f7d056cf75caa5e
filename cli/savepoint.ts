/** `sage savepoint <job>`, `sage savepoint list|show|rm`, and the savepoint parts of `sage stop` and `sage run`. */
import { join } from "node:path";
import type { Logger } from "pino";
import type { SageConfig } from "../core/config/schema.js";
import { kafkaClientOf } from "../connectors/kafka/index.js";
import { SageClient } from "../client/sage-client.js";
import { DirectorySavepointStore } from "../client/savepoint/store.js";
import { MANIFEST_FILE, parseManifest, type SavepointManifest } from "../client/savepoint/manifest.js";
import { takeSavepoint } from "../client/savepoint/take.js";
import { restoreSavepoint } from "../client/savepoint/restore.js";
import { StreamJobHandle, type StreamJob } from "../streaming/stream-job.js";
import { UsageError } from "../core/errors.js";
import { cliLogger, configFrom, type GlobalFlags } from "./common.js";

/** Flags of the savepoint commands. */
export interface SavepointFlags extends GlobalFlags {
  dir?: string;
  json?: boolean;
}

/** The savepoint directory: `--dir`, else `<data-dir>/savepoints`. */
function storeOf(config: SageConfig, flags: SavepointFlags): DirectorySavepointStore {
  return new DirectorySavepointStore(flags.dir ?? join(config["data-dir"], "savepoints"));
}

/** The store and id of a savepoint named by id (in the savepoint directory) or by path. */
function locate(config: SageConfig, flags: SavepointFlags, ref: string): { store: DirectorySavepointStore; id: string } {
  return ref.includes("/") ? DirectorySavepointStore.fromPath(ref) : { store: storeOf(config, flags), id: ref };
}

/** The one running streaming job named by `name` (job id or pipeline). */
async function theJob(client: SageClient, name: string): Promise<StreamJobHandle> {
  const jobs = await StreamJobHandle.find(client, name);
  if (jobs.length === 0) throw new UsageError(`no running streaming job is named "${name}" (by job id or pipeline); \`sage status\` lists them`);
  if (jobs.length > 1) throw new UsageError(`"${name}" names ${jobs.length} running streaming jobs (${jobs.map((j) => j.jobId).join(", ")}); give a job id`);
  return jobs[0]!;
}

/** Takes a savepoint of a running job (and stops it under the barrier, with `stop`); prints its id and path. */
export async function savepointCommand(jobName: string, flags: SavepointFlags & { stop?: boolean }): Promise<void> {
  const config = configFrom(flags);
  const logger = cliLogger(config, "savepoint");
  const client = await SageClient.connect({ config });
  const kafka = kafkaClientOf(config, logger);
  try {
    const job = await theJob(client, jobName);
    const taken = await takeSavepoint(job, kafka, {
      store: storeOf(config, flags),
      stop: flags.stop === true,
      logger,
      onPhase: (m) => process.stderr.write(`${m}\n`),
    });
    if (flags.json) process.stdout.write(`${JSON.stringify({ id: taken.id, path: taken.path, manifest: taken.manifest })}\n`);
    else process.stdout.write(`savepoint ${taken.id}\npath ${taken.path}\n${summary(taken.manifest)}\n${flags.stop ? `job ${job.jobId} stopped\n` : ""}`);
  } finally {
    await client.close();
  }
}

/** One line per operator with its entries and key groups, and the source offsets. */
function summary(m: SavepointManifest): string {
  const lines = [
    `job ${m.job.jobId} of ${m.job.pipeline} (plan ${m.job.planHash.slice(0, 12)}, parallelism ${m.job.parallelism}, ${m.job.keyGroups} key groups), taken ${m.createdAt}${m.stopped ? ", job stopped" : ""}`,
  ];
  for (const [uid, op] of Object.entries(m.operators))
    lines.push(
      `  operator ${uid} (${op.kind}${op.sourcePartitioned ? ", source-partitioned" : ""}): ${op.entries} entries, ${op.timers} timers, ${op.keyGroups.length} key groups, ${op.bytes} bytes`,
    );
  if (Object.keys(m.operators).length === 0) lines.push("  no keyed state");
  lines.push(
    `  source offsets (group ${m.sources.groupId}): ${Object.entries(m.sources.offsets)
      .map(([tp, o]) => `${tp}@${o}`)
      .join(", ")}`,
  );
  return lines.join("\n");
}

/** `sage savepoint list`: the savepoints in the directory, oldest first. */
export async function savepointListCommand(flags: SavepointFlags): Promise<void> {
  const config = configFrom(flags);
  const store = storeOf(config, flags);
  const rows: Array<{ id: string; path: string; manifest: SavepointManifest | null; error?: string }> = [];
  for (const id of await store.list()) {
    try {
      rows.push({
        id,
        path: store.pathOf(id),
        manifest: parseManifest((await store.get(id, MANIFEST_FILE)).toString("utf8"), join(store.pathOf(id), MANIFEST_FILE)),
      });
    } catch (err) {
      rows.push({ id, path: store.pathOf(id), manifest: null, error: (err as Error).message });
    }
  }
  if (flags.json) return void process.stdout.write(`${JSON.stringify(rows)}\n`);
  if (rows.length === 0) return void process.stdout.write(`no savepoints in ${store.location}\n`);
  for (const r of rows) {
    const m = r.manifest;
    const state = m ? Object.values(m.operators).reduce((n, o) => n + o.entries, 0) : 0;
    process.stdout.write(
      m
        ? `${r.id}  ${m.createdAt}  ${m.job.pipeline}/${m.job.jobId}  ${Object.keys(m.operators).length} operator(s), ${state} entries\n`
        : `${r.id}  unreadable: ${r.error}\n`,
    );
  }
}

/** `sage savepoint show <id|path>`: the manifest, summed up (or whole, with --json). */
export async function savepointShowCommand(ref: string, flags: SavepointFlags): Promise<void> {
  const config = configFrom(flags);
  const { store, id } = locate(config, flags, ref);
  const manifest = parseManifest((await store.get(id, MANIFEST_FILE)).toString("utf8"), join(store.pathOf(id), MANIFEST_FILE));
  process.stdout.write(flags.json ? `${JSON.stringify(manifest, null, 2)}\n` : `savepoint ${id}\npath ${store.pathOf(id)}\n${summary(manifest)}\n`);
}

/** `sage savepoint rm <id|path>`: deletes a savepoint. */
export async function savepointRemoveCommand(ref: string, flags: SavepointFlags): Promise<void> {
  const config = configFrom(flags);
  const { store, id } = locate(config, flags, ref);
  await store.remove(id);
  process.stdout.write(`removed savepoint ${id} from ${store.location}\n`);
}

/** Flags of a job started from a savepoint. */
export interface FromSavepointFlags {
  fromSavepoint?: string;
  allowNonRestoredState?: boolean;
}

/** Prepares a new streaming job to start from `flags.fromSavepoint` (nothing is written when a check fails). */
export async function prepareFromSavepoint(job: StreamJob, config: SageConfig, flags: FromSavepointFlags, logger: Logger): Promise<void> {
  if (!flags.fromSavepoint) {
    if (flags.allowNonRestoredState) throw new UsageError("--allow-non-restored-state needs --from-savepoint");
    return;
  }
  const { store, id } = locate(config, {}, flags.fromSavepoint);
  await restoreSavepoint(job, kafkaClientOf(config, logger), store, id, {
    allowNonRestoredState: flags.allowNonRestoredState === true,
    sessionTimeoutMs: config.kafka["session-timeout"],
    createTopics: config.kafka["create-topics"],
    logger,
    onPhase: (m) => process.stderr.write(`${m}\n`),
  });
}
