/**
 * Case `history`: workflow history bytes per record of the bounded job, against the size of the
 * record. In the fused bounded job records never enter history (one activity reads a split, runs the
 * chain and writes the sink shard); in the unfused job (five stages, four hops per record, measured
 * on a sample) records pass between stages by edge file, a claim check in the job's staging
 * directory, and history carries only references. Records do pass through history in streaming jobs
 * (Kafka batches arrive as signals): that row comes with the Kafka case.
 */
import { join, resolve } from "node:path";
import { boundedInput, boundedJob } from "./bounded/job.js";
import { ensureEvents } from "./bounded/events.js";
import pipeline from "./bounded/pipeline.js";
import type { BenchCase, BenchContext, CaseReport } from "./case.js";
import { runSageJob, type SageJobRun } from "./sage-job.js";

/** Events of the unfused sample (its history per record does not depend on the job's size). */
const UNFUSED_SAMPLE = { full: 20_000, smoke: 2_000 };

async function run(ctx: BenchContext): Promise<CaseReport> {
  const input = await boundedInput(ctx);
  const recordBytes = input.bytes / input.records;
  const fused = await boundedJob(ctx, 1);

  const sample = Math.min(UNFUSED_SAMPLE[ctx.size], input.records);
  const samplePath = resolve(".sage", "bench", `events-${sample}.jsonl`);
  const sampleBytes = await ensureEvents(samplePath, sample);
  ctx.log(`history: unfused job on ${sample} events`);
  const unfused = await runSageJob(await ctx.server(), {
    pipeline,
    pipelineFile: "bench/bounded/pipeline.ts",
    params: { input: samplePath, output: join(ctx.dir, "history-unfused.jsonl") },
    workers: 1,
    settings: { SAGE_EXECUTION_FUSION: "false" },
    dir: join(ctx.dir, "history-unfused"),
    label: "history-unfused",
  });

  const rows: Array<{ label: string; records: number; recordBytes: number; run: SageJobRun }> = [
    { label: "bounded job, fused (records stay out of history)", records: input.records, recordBytes, run: fused },
    {
      label: `bounded job, unfused (${sample.toLocaleString("en-US")}-event sample; batches pass between stages by edge file)`,
      records: sample,
      recordBytes: sampleBytes / sample,
      run: unfused,
    },
  ];
  const perRecord = (r: (typeof rows)[number]) => r.run.history.bytes / r.records;
  const checks = rows.map((r) => ({ what: `${r.label}: every event read`, ok: r.run.result.counts.events?.out === r.records }));
  return {
    title: "history: workflow history bytes per record vs the record's size",
    columns: ["job", "records", "record B", "runs", "events", "history B", "history B/record", "history / record size"],
    rows: rows.map((r) => [
      r.label,
      r.records.toLocaleString("en-US"),
      r.recordBytes.toFixed(1),
      String(r.run.history.runs),
      r.run.history.events.toLocaleString("en-US"),
      r.run.history.bytes.toLocaleString("en-US"),
      perRecord(r).toFixed(3),
      `${(perRecord(r) / r.recordBytes).toFixed(4)}x`,
    ]),
    chart: {
      unit: "history bytes per record",
      bars: [
        { label: "the record itself (JSON bytes)", value: recordBytes, durable: false },
        ...rows.map((r) => ({ label: r.label.replace(/ \(.*/, ""), value: perRecord(r), durable: true })),
      ],
    },
    checks,
    notes: [
      `target <= 1.2x the record's size: unfused ${(perRecord(rows[1]!) / rows[1]!.recordBytes).toFixed(2)}x ` +
        `(${perRecord(rows[1]!) / rows[1]!.recordBytes <= 1.2 ? "met" : "NOT met"}; references to edge files, not records); fused ${(perRecord(rows[0]!) / recordBytes).toFixed(4)}x (records do not pass)`,
      `fused: ${fused.result.splitsTotal} splits, ${Math.round(fused.history.bytes / Math.max(1, fused.result.splitsTotal)).toLocaleString("en-US")} history bytes per split`,
    ],
    data: rows.map((r) => ({
      label: r.label,
      records: r.records,
      recordBytes: r.recordBytes,
      history: r.run.history,
      splits: r.run.result.splitsTotal,
      settings: r.run.settings,
    })),
  };
}

/** The registry entry. */
export const historyCase: BenchCase = {
  name: "history",
  summary: "history bytes per record of the bounded job (fused and unfused) vs the record's size",
  inDefaultRun: true,
  inSmoke: true,
  run,
};
