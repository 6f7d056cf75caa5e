/**
 * The savepoint manifest: a self-describing, versioned JSON document that names the job and plan
 * it was taken from, the source offsets and event time per source partition, and each keyed
 * operator's state by uid with its data file, checksum, and sizes by key group. The data files hold
 * the entries; the manifest is written last, so a savepoint without one is incomplete.
 */
import { z } from "zod";
import { SavepointError } from "./errors.js";

/** What `format` says in every manifest. */
export const SAVEPOINT_FORMAT = "sage-savepoint";
/** The manifest version this code writes and the newest it reads. */
export const SAVEPOINT_VERSION = 1;
/** The manifest's file name inside a savepoint. */
export const MANIFEST_FILE = "manifest.json";

const count = z.number().int().min(0);

const operatorSchema = z.object({
  /** The operator's name in the pipeline. */
  name: z.string(),
  /** What state it keeps: `reduce`, `aggregate`, `process`, `window/<kind>/<apply>`, `windowJoin/<kind>`, `intervalJoin`. */
  kind: z.string(),
  /** True when its state lived per partition workflow (a source-partitioned keyBy), not per key-group range. */
  sourcePartitioned: z.boolean(),
  /** Its data file, relative to the savepoint. */
  file: z.string(),
  /** The data file's size and SHA-256 (hex). */
  bytes: count,
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  /** Entries (timers included) and timers. */
  entries: count,
  timers: count,
  /** Entries and bytes per key group that holds any: `[keyGroup, entries, bytes]`. */
  keyGroups: z.array(z.tuple([count, count, count])),
});

const manifestSchema = z.object({
  format: z.literal(SAVEPOINT_FORMAT),
  version: z.number().int().min(1),
  id: z.string().min(1),
  createdAt: z.string(),
  /** True when the job was stopped with this savepoint (`sage stop --savepoint`). */
  stopped: z.boolean(),
  job: z.object({
    pipeline: z.string().min(1),
    jobId: z.string().min(1),
    planHash: z.string(),
    parallelism: z.number().int().min(1),
    keyGroups: z.number().int().min(1),
    params: z.record(z.string(), z.string()),
  }),
  sources: z.object({
    groupId: z.string(),
    topics: z.array(z.string()),
    /** The next offset to read per source `topic:partition`. */
    offsets: z.record(z.string(), count),
  }),
  /**
   * The end offset per Kafka sink `topic:partition` when the savepoint was taken (absent in
   * savepoints of older writers): a restore warns when one has grown since.
   */
  sinks: z.object({ offsets: z.record(z.string(), count) }).optional(),
  /** The largest event time seen per source `topic:partition` (what watermarks restart from). */
  eventTime: z.record(z.string(), z.number()),
  operators: z.record(z.string(), operatorSchema),
});

/** A savepoint's manifest. */
export type SavepointManifest = z.infer<typeof manifestSchema>;
/** One keyed operator's state in a savepoint. */
export type SavepointOperator = z.infer<typeof operatorSchema>;

/**
 * Parses and checks a manifest read from `where`: a `SavepointError` naming what is wrong (not
 * JSON, not a savepoint, a newer format version, a missing or mistyped field).
 */
export function parseManifest(text: string, where: string): SavepointManifest {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new SavepointError(`${where} is not a savepoint manifest: it is not valid JSON (${(err as Error).message}); the file may be truncated`, {
      cause: err,
    });
  }
  const head = raw as { format?: unknown; version?: unknown } | null;
  if (head === null || typeof head !== "object" || head.format !== SAVEPOINT_FORMAT)
    throw new SavepointError(`${where} is not a savepoint manifest: its "format" is ${JSON.stringify(head?.format)}, not "${SAVEPOINT_FORMAT}"`);
  if (typeof head.version === "number" && head.version > SAVEPOINT_VERSION)
    throw new SavepointError(
      `${where} is a savepoint of format version ${head.version}, newer than this Sage reads (up to ${SAVEPOINT_VERSION}); restore it with a newer Sage`,
    );
  const parsed = manifestSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new SavepointError(`${where} is not a valid savepoint manifest: ${issue.path.join(".") || "(top)"}: ${issue.message}`);
  }
  return parsed.data;
}
