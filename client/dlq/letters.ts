/**
 * One dead letter as `sage dlq` sees it, whether a line of a bounded job's dead-letter file or a
 * record of a streaming job's dead-letter topic: where it failed, why, after how many tries, its
 * earlier failures when it was re-driven, and the record itself.
 */
import type { ConsumedMessage } from "../../connectors/kafka/client.js";
import { REDRIVE_HEADERS, type Failure } from "../../core/plan/redrive.js";

/** A dead letter. */
export interface DeadLetter {
  /** Stable id: `<topic>[<partition>]@<offset>`, or `<file's job id>:<line>` for a dead-letter file. */
  id: string;
  /** The job whose run dead-lettered it (a redrive job's id for a record that failed again there). */
  job: string;
  /** The job the record first failed in. */
  origin: string;
  operator: string;
  /** `Name: message`. */
  error: string;
  /** The error's stack where it was thrown, if the letter kept one. */
  stack: string | null;
  /** Tries in this failure. */
  attempts: number;
  /** When it was dead-lettered (ISO), if known. */
  at: string | null;
  /** Where the record came from: a source position, or a bounded job's shard. */
  source: string | null;
  /** A keyed operator's key (encoded). */
  key: string | null;
  /** The record as the operator received it (raw text or base64 bytes when it is not JSON). */
  record: unknown;
  /** Its event time, if it had one. */
  timestamp: number | null;
  /** Earlier failures, oldest first (empty for a first failure). */
  history: Failure[];
  /** The redrive that sent the record that failed here (null: a first failure). */
  redrive: string | null;
  /** Streaming: the Kafka record's key and value bytes, re-sent as they are. */
  kafka?: { key: Buffer | null; value: Buffer | null };
}

/** Total tries over every failure of the letter's record. */
export function totalAttempts(letter: Pick<DeadLetter, "attempts" | "history">): number {
  return letter.history.reduce((n, f) => n + f.attempts, letter.attempts);
}

/** The letter as the newest entry of its record's history. */
export function failureOf(letter: DeadLetter): Failure {
  return {
    job: letter.job,
    operator: letter.operator,
    error: letter.error,
    attempts: letter.attempts,
    ...(letter.at ? { at: letter.at } : {}),
    ...(letter.redrive ? { redrive: letter.redrive } : {}),
  };
}

/** The shape of one line of a bounded job's dead-letter file. */
interface FileEntry {
  jobId?: string;
  operator?: string;
  shard?: string;
  attempts?: number;
  error?: { name?: string; message?: string; stack?: string };
  record?: unknown;
  key?: string;
  at?: string;
  timestamp?: number;
  redrive?: string;
  history?: Failure[];
  origin?: string;
}

/** Parses line `line` (1-based) of the dead-letter file of job `fileJob`. */
export function letterFromLine(fileJob: string, line: number, text: string): DeadLetter {
  const e = JSON.parse(text) as FileEntry;
  const history = Array.isArray(e.history) ? e.history : [];
  const job = e.jobId ?? fileJob;
  return {
    id: `${fileJob}:${line}`,
    job,
    origin: history[0]?.job ?? job,
    operator: e.operator ?? "?",
    error: `${e.error?.name ?? "Error"}: ${e.error?.message ?? ""}`,
    stack: e.error?.stack ?? null,
    attempts: e.attempts ?? 1,
    at: e.at ?? null,
    source: e.origin ?? (e.shard !== undefined ? `shard ${e.shard}` : null),
    key: e.key ?? null,
    record: e.record ?? null,
    timestamp: e.timestamp ?? null,
    history,
    redrive: e.redrive ?? null,
  };
}

/** The record of a dead-letter topic message: its JSON, else its text, else its bytes in base64. */
function recordOf(value: Buffer | null): unknown {
  if (value === null) return null;
  const text = value.toString("utf8");
  if (!Buffer.from(text, "utf8").equals(value)) return { base64: value.toString("base64") };
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

/** Parses a dead-letter topic message; null for a record that is not a Sage dead letter. */
export function letterFromMessage(topic: string, m: ConsumedMessage & { partition: number }): DeadLetter | null {
  const h = m.headers;
  const job = h["sage-job"];
  const operator = h["sage-operator"];
  if (job === undefined || operator === undefined) return null;
  let history: Failure[] = [];
  try {
    const parsed = JSON.parse(h[REDRIVE_HEADERS.history] ?? "[]") as unknown;
    if (Array.isArray(parsed)) history = parsed as Failure[];
  } catch {
    history = [];
  }
  const ts = h[REDRIVE_HEADERS.timestamp];
  return {
    id: `${topic}[${m.partition}]@${m.offset}`,
    job,
    origin: history[0]?.job ?? job,
    operator,
    error: h["sage-error"] ?? "Error: (no reason)",
    stack: h["sage-error-stack"] ?? null,
    attempts: Number(h["sage-attempts"] ?? 1),
    at: new Date(Number(m.timestamp)).toISOString(),
    source: h["sage-source"] ?? null,
    key: h["sage-key"] ?? null,
    record: recordOf(m.value),
    timestamp: ts !== undefined ? Number(ts) : null,
    history,
    redrive: h[REDRIVE_HEADERS.redrive] ?? null,
    kafka: { key: m.key, value: m.value },
  };
}
