/** `sage dlq list|show <job>`: a job's dead letters, grouped by operator and error, or one by one with their history. */
import type { SageConfig } from "../core/config/schema.js";
import { UsageError } from "../core/errors.js";
import { kafkaClientOf } from "../connectors/kafka/index.js";
import type { KafkaClient } from "../connectors/kafka/client.js";
import { SageClient } from "../client/sage-client.js";
import { findJob, type JobRef } from "../client/dlq/job-ref.js";
import { lettersOfJob, type LetterState, type RedriveSummary } from "../client/dlq/job-letters.js";
import { totalAttempts } from "../client/dlq/letters.js";
import { groupLetters, matches, type LetterFilter, type LetterGroup } from "../client/dlq/selection.js";
import { configFrom, type GlobalFlags } from "./common.js";

/** Frames of a letter's stack that `sage dlq show` prints. */
const STACK_FRAMES = 4;

/** Flags of `sage dlq list` and `show`. */
export interface DlqFlags extends GlobalFlags {
  operator?: string;
  error?: string;
  limit?: string;
  all?: boolean;
  json?: boolean;
}

/** A connected client, the job and a lazily made Kafka client, closed after `work`. */
export async function withJob<T>(
  flags: GlobalFlags,
  id: string,
  work: (ctx: { client: SageClient; config: SageConfig; job: JobRef; kafka: () => KafkaClient }) => Promise<T>,
): Promise<T> {
  const config = configFrom(flags);
  const client = await SageClient.connect({ config });
  let kafka: KafkaClient | null = null;
  try {
    const job = await findJob(client, id);
    return await work({ client, config, job, kafka: () => (kafka ??= kafkaClientOf(config)) });
  } finally {
    await client.close();
  }
}

/** The filter the flags give. */
export function filterOf(flags: { operator?: string; error?: string }): LetterFilter {
  return { ...(flags.operator ? { operator: flags.operator } : {}), ...(flags.error ? { error: flags.error } : {}) };
}

/** Letters the flags select: matching the filter, and outstanding unless `--all`. */
function selected(states: LetterState[], flags: DlqFlags): LetterState[] {
  const filter = filterOf(flags);
  return states.filter((s) => matches(s.letter, filter) && (flags.all || s.redrivenBy === null));
}

/** Who the job is, in one line. */
function jobLine(job: JobRef, from: string): string {
  const id =
    job.kind === "bounded"
      ? job.workflowId
      : `sage/${job.pipeline}/${job.jobId} (${job.workflowIds.length} partition workflow(s), ${job.running ? "running" : "stopped"})`;
  return `job ${id}, ${job.kind}; dead letters from ${from}`;
}

/** The groups as a table. */
export function renderGroups(groups: LetterGroup[]): string {
  if (groups.length === 0) return "  (none)";
  const rows = groups.map((g) => [
    String(g.count),
    g.operator,
    g.first ?? "-",
    g.last ?? "-",
    g.failedBefore > 0 ? `${g.failedBefore} failed before, up to ${g.maxAttempts} tries` : "",
    g.error,
  ]);
  const head = ["COUNT", "OPERATOR", "FIRST", "LAST", "HISTORY", "ERROR"];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => `  ${r.map((c, i) => (i === r.length - 1 ? c : i === 0 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join("  ")}`;
  return [line(head), ...rows.map(line)].join("\n");
}

/** The redrives, one line each. */
function renderRedrives(redrives: RedriveSummary[]): string[] {
  return redrives.map((r) => `  ${r.redrive}: ${r.letters} letter(s), ${r.status}${r.at ? `, started ${r.at}` : ""}`);
}

/** `sage dlq list <job>`: the job's outstanding dead letters grouped by operator and error. */
export async function dlqListCommand(id: string, flags: DlqFlags): Promise<void> {
  await withJob(flags, id, async ({ client, config, job, kafka }) => {
    const { states, redrives, from } = await lettersOfJob({ client, config, kafka }, job);
    const shown = selected(states, flags);
    const groups = groupLetters(shown.map((s) => s.letter));
    const redriven = states.filter((s) => s.redrivenBy !== null).length;
    if (flags.json) {
      process.stdout.write(
        `${JSON.stringify({ job: job.jobId, pipeline: job.pipeline, kind: job.kind, from, letters: shown.length, groups, redriven, redrives })}\n`,
      );
      return;
    }
    const out = [jobLine(job, from), `${flags.all ? "all" : "outstanding"}: ${shown.length} in ${groups.length} group(s)`, renderGroups(groups)];
    if (redriven > 0 || redrives.length > 0) out.push(`re-driven: ${redriven}`, ...renderRedrives(redrives));
    process.stdout.write(`${out.join("\n")}\n`);
  });
}

/** Text of a record for a terminal: JSON, cut at 300 characters. */
function shortRecord(record: unknown): string {
  const text = typeof record === "string" ? JSON.stringify(record) : (JSON.stringify(record) ?? "null");
  return text.length > 300 ? `${text.slice(0, 299)}…` : text;
}

/** One letter, several lines: reason, operator, where from, tries, history and the record. */
export function renderLetter({ letter: l, redrivenBy }: LetterState): string {
  const lines = [
    `${l.id}  operator ${l.operator}, ${l.attempts} tr${l.attempts === 1 ? "y" : "ies"}${l.history.length > 0 ? ` (failure ${l.history.length + 1}, ${totalAttempts(l)} tries in all)` : ""}${l.at ? `, at ${l.at}` : ""}`,
    `  error:   ${l.error}`,
    `  source:  ${l.source ?? "-"}${l.job !== l.origin ? ` (failed first in job ${l.origin}, now in ${l.job})` : ""}`,
  ];
  // The stack's first frames: where in the user's code it was thrown.
  const frames = (l.stack ?? "").split("\n").filter((f) => f.trimStart().startsWith("at "));
  if (frames.length > 0) lines.push(`  thrown:  ${frames[0]!.trim()}`, ...frames.slice(1, STACK_FRAMES).map((f) => `           ${f.trim()}`));
  if (l.key !== null) lines.push(`  key:     ${l.key}`);
  lines.push(`  record:  ${shortRecord(l.record)}`);
  l.history.forEach((f, i) =>
    lines.push(
      `  ${i === 0 ? "history:" : "        "} ${i + 1}. ${f.at ?? "-"} ${f.operator} (${f.attempts} tr${f.attempts === 1 ? "y" : "ies"}${f.redrive ? `, redrive ${f.redrive}` : ""}): ${f.error}`,
    ),
  );
  if (l.redrive) lines.push(`  came in with redrive ${l.redrive}`);
  lines.push(`  status:  ${redrivenBy ? `re-driven by ${redrivenBy}` : "outstanding"}`);
  return lines.join("\n");
}

/** `sage dlq show <job>`: the selected dead letters one by one. */
export async function dlqShowCommand(id: string, flags: DlqFlags): Promise<void> {
  const limit = flags.limit === undefined ? 20 : Number(flags.limit);
  if (!Number.isInteger(limit) || limit < 0) throw new UsageError(`--limit must be a whole number, got "${flags.limit}"`);
  await withJob(flags, id, async ({ client, config, job, kafka }) => {
    const { states, from } = await lettersOfJob({ client, config, kafka }, job);
    const shown = selected(states, flags);
    const page = shown.slice(0, limit);
    if (flags.json) {
      const letters = page.map((s) => ({ ...s.letter, kafka: undefined, redrivenBy: s.redrivenBy, totalAttempts: totalAttempts(s.letter) }));
      process.stdout.write(`${JSON.stringify({ job: job.jobId, pipeline: job.pipeline, kind: job.kind, from, total: shown.length, letters })}\n`);
      return;
    }
    const more = shown.length > page.length ? `\n(${shown.length - page.length} more: --limit ${shown.length})` : "";
    process.stdout.write(`${jobLine(job, from)}\n${shown.length} dead letter(s)\n\n${page.map(renderLetter).join("\n\n")}${more}\n`);
  });
}
