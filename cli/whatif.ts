/** `sage whatif <job> --module <changed.ts> [--base <recorded.ts>]`: a changed pipeline over a job's recorded input, as a per-record diff. */
import { writeFileSync } from "node:fs";
import { deadLetterTopicOf } from "../connectors/kafka/index.js";
import { UsageError } from "../core/errors.js";
import type { DiffEntry } from "../core/whatif/output-diff.js";
import { parseRangeBound } from "../replay/whatif/recorded-range.js";
import { recordedSplits, whatIfBounded } from "../replay/whatif/bounded-whatif.js";
import { whatIf, type WhatifReport, type WhatifSideSummary } from "../replay/whatif/whatif.js";
import { withJob } from "./dlq.js";
import { cliLogger, type GlobalFlags } from "./common.js";
import { loadPipeline } from "./module-loader.js";

/** Flags of `sage whatif`. */
export interface WhatifFlags extends GlobalFlags {
  module: string;
  base?: string;
  pipeline?: string;
  from?: string;
  to?: string;
  out?: string;
  json?: boolean;
  memo?: boolean;
  batch?: string;
}

/** A value for a terminal line: JSON, cut at 160 characters. */
function short(v: unknown): string {
  const text = JSON.stringify(v) ?? "undefined";
  return text.length > 160 ? `${text.slice(0, 159)}…` : text;
}

/** One diff entry, one line (and a line per changed field). */
function renderEntry(e: DiffEntry): string[] {
  const head = `${e.kind === "added" ? "+" : e.kind === "removed" ? "-" : "~"} ${e.from} -> ${e.topic}${e.key === null ? "" : ` key ${e.key}`}`;
  if (e.kind !== "changed") return [`${head}  ${short(e.value)}`];
  return [head, ...e.fields.map((f) => `    ${f.path}: ${"base" in f ? short(f.base) : "(none)"} -> ${"changed" in f ? short(f.changed) : "(none)"}`)];
}

/** One side's figures, one line. */
function sideLine(label: string, s: WhatifSideSummary): string {
  if (s.recorded) return `${label}: the job's own outputs for the range, read back (${s.outputs})`;
  return (
    `${label}: stage units run ${s.stageRuns}, from memo ${s.memoHits}; model calls ${s.modelCalls} ` +
    `(${s.promptTokens + s.completionTokens} tokens, $${s.cost.toFixed(4)}), cache hits ${s.cacheHits}`
  );
}

/** The report for a terminal. */
export function renderWhatif(r: WhatifReport): string {
  const range = r.splits
    ? `${r.splits.length} split(s): ${r.splits.map((s) => s.input).join(", ")}`
    : r.range.map((p) => `${p.topic}[${p.partition}]@${p.from}-${p.to} (${p.records} records)`).join(", ");
  const { added, removed, changed, same } = r.counts;
  return [
    `what-if of ${r.job} over ${range || "(no partitions)"} in ${r.units} unit(s)`,
    ...r.diff.entries.flatMap(renderEntry),
    `${added} added, ${removed} removed, ${changed} changed, ${same} same; ` +
      `model calls ${r.changed.modelCalls} (${r.changed.promptTokens + r.changed.completionTokens} tokens, $${r.changed.cost.toFixed(4)}), cache hits ${r.changed.cacheHits}`,
    sideLine("  changed", r.changed),
    sideLine("  base", r.base),
  ].join("\n");
}

/** Runs the what-if and prints (and with `--out`, writes) the diff. */
export async function whatifCommand(jobRef: string, flags: WhatifFlags): Promise<void> {
  const batch = Number(flags.batch ?? "0");
  if (flags.batch !== undefined && (!Number.isInteger(batch) || batch < 1)) throw new UsageError(`--batch ${flags.batch}: give a positive number of records`);
  const changed = await loadPipeline(flags.module, flags.pipeline);
  const base = flags.base ? await loadPipeline(flags.base, flags.pipeline) : undefined;
  await withJob(flags, jobRef, async ({ client, config, job, kafka }) => {
    if (job.kind === "bounded") {
      if (!base) {
        throw new UsageError(
          `job ${job.jobId} is bounded: give --base <module the job runs> (comparing against a bounded job's own published output is not built; streaming jobs only)`,
        );
      }
      if (flags.from || flags.to)
        throw new UsageError(`job ${job.jobId} is bounded: a what-if re-runs every split it read (--from/--to are for streaming jobs)`);
      const report = await whatIfBounded({
        config,
        job,
        splits: await recordedSplits(client, job.workflowId),
        base,
        changed,
        runtime: client.runtimeOptions(),
        memo: flags.memo !== false,
        logger: cliLogger(config, "whatif"),
      });
      print(report, flags);
      return;
    }
    const report = await whatIf({
      config,
      kafka: kafka(),
      job,
      ...(base ? { base } : {}),
      changed,
      ...(flags.from ? { from: parseRangeBound(flags.from, "--from") } : {}),
      ...(flags.to ? { to: parseRangeBound(flags.to, "--to") } : {}),
      runtime: client.runtimeOptions(),
      deadLetterTopic: deadLetterTopicOf(config, job.pipeline),
      memo: flags.memo !== false,
      maxRecords: flags.batch !== undefined ? batch : config.kafka["max-batch-records"],
      logger: cliLogger(config, "whatif"),
    });
    print(report, flags);
  });
}

/** Prints the report (JSON with `--json`), and writes the diff to `--out`. */
function print(report: WhatifReport, flags: WhatifFlags): void {
  if (flags.out) writeFileSync(flags.out, report.diff.entries.map((e) => `${JSON.stringify(e)}\n`).join(""));
  if (flags.json) {
    const { diff, ...summary } = report;
    process.stdout.write(`${JSON.stringify({ ...summary, entries: diff.entries })}\n`);
  } else process.stdout.write(`${renderWhatif(report)}\n`);
}
