/**
 * A bounded redrive, exactly once: the selected dead letters are written once, as the redrive's
 * input file and its record (`redrive.json`), then run as a bounded job with a deterministic id
 * (`<job>.<redrive>`) over that file, each record entering at the operator it failed in, with the
 * job's parameters and so its sinks: file sinks get the redrive's output appended at its commit
 * (staged, then published once, like any job's). A redrive asked for again finds its record and its
 * job, and waits for that job instead of starting another; only a job that failed runs again.
 */
import { mkdirSync, existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { WorkflowExecutionAlreadyStartedError, type WorkflowHandle } from "@temporalio/client";
import { PIPELINE_WORKFLOW, workflowIdOf, type JobInput } from "../../core/plan/job.js";
import type { PhysicalPlan } from "../../core/plan/physical.js";
import { redriveEntryOf, withFailure, type RedriveEnvelope } from "../../core/plan/redrive.js";
import type { SageClient } from "../sage-client.js";
import { boundedLetters, redriveJobId, redrivesDir, type BoundedRedriveRecord } from "./file-letters.js";
import type { BoundedJobRef } from "./job-ref.js";
import { failureOf, type DeadLetter } from "./letters.js";
import { matches, type LetterFilter } from "./selection.js";
import { RedriveConflictError, RedriveRefusedError } from "./errors.js";

/** Options of a bounded redrive. */
export interface BoundedRedriveOptions {
  client: SageClient;
  dataDir: string;
  job: BoundedJobRef;
  /** The plan the records run through (the job's, or a fixed module's) and the task queue its workers poll. */
  target: { plan: PhysicalPlan; taskQueue: string };
  filter: LetterFilter;
  redrive: string;
}

/** A bounded redrive under way (or done): its record and its job. */
export interface BoundedRedriveStart {
  record: BoundedRedriveRecord;
  handle: WorkflowHandle;
  /** False when this call found the redrive's job already started (by an earlier, interrupted call). */
  started: boolean;
  refused: Array<{ id: string; reason: string }>;
}

/** The envelope of a letter: where it enters the plan, and its history with this failure added. */
export function envelopeOf(letter: DeadLetter, stage: string, redrive: string): RedriveEnvelope {
  return {
    id: letter.id,
    stage,
    operator: letter.operator,
    record: letter.record,
    ...(letter.key !== null ? { key: letter.key } : {}),
    ...(letter.timestamp !== null ? { timestamp: letter.timestamp } : {}),
    lineage: { redrive, history: withFailure(letter.history, failureOf(letter)), ...(letter.source ? { origin: letter.source } : {}) },
  };
}

/** Writes `text` to `path` atomically (a temporary file renamed over it). */
function writeAtomically(path: string, text: string): void {
  writeFileSync(`${path}.tmp`, text);
  renameSync(`${path}.tmp`, path);
}

/** The redrive's record: the one written earlier (checked against this request), or a new one with its input file; null when nothing is selected. */
async function recordOf(o: BoundedRedriveOptions, dir: string): Promise<{ record: BoundedRedriveRecord; refused: BoundedRedriveStart["refused"] } | null> {
  const path = join(dir, "redrive.json");
  if (existsSync(path)) {
    const record = JSON.parse(readFileSync(path, "utf8")) as BoundedRedriveRecord;
    if (JSON.stringify(record.filter) !== JSON.stringify(o.filter) || record.target !== o.target.plan.hash) {
      throw new RedriveConflictError(
        o.redrive,
        `redrive ${o.redrive} of job ${o.job.jobId} was started with ${JSON.stringify(record.filter)} through plan ${record.target.slice(0, 12)}; this request differs`,
      );
    }
    return { record, refused: [] };
  }
  const { letters, takenBy, redrives } = await boundedLetters(o.client, o.dataDir, o.job);
  const running = redrives.find((r) => r.status === "RUNNING");
  if (running)
    throw new RedriveRefusedError(
      `redrive ${running.redrive} of job ${o.job.jobId} is still running (${running.workflowId}); wait for it, then re-drive again`,
    );
  const envelopes: RedriveEnvelope[] = [];
  const refused: BoundedRedriveStart["refused"] = [];
  for (const l of letters) {
    if (!matches(l, o.filter) || takenBy.has(l.id)) continue;
    const entry = redriveEntryOf(o.target.plan, l.operator, l.key);
    if ("refused" in entry) refused.push({ id: l.id, reason: entry.refused });
    else envelopes.push(envelopeOf(l, entry.stage, o.redrive));
  }
  if (envelopes.length === 0) return refused.length > 0 ? { record: emptyRecord(o), refused } : null;
  mkdirSync(dir, { recursive: true });
  writeAtomically(join(dir, "input.jsonl"), envelopes.map((e) => JSON.stringify(e)).join("\n") + "\n");
  // The record goes last: once it exists, the selection is fixed.
  const record: BoundedRedriveRecord = { ...emptyRecord(o), letters: envelopes.map((e) => e.id) };
  writeAtomically(path, JSON.stringify(record, null, 2));
  return { record, refused };
}

/** A record of this request that selected nothing. */
function emptyRecord(o: BoundedRedriveOptions): BoundedRedriveRecord {
  const jobId = redriveJobId(o.job.jobId, o.redrive);
  return {
    redrive: o.redrive,
    job: o.job.jobId,
    filter: o.filter,
    target: o.target.plan.hash,
    workflowId: workflowIdOf(o.job.pipeline, jobId),
    letters: [],
    at: new Date().toISOString(),
  };
}

/** Starts (or finds) the redrive's job; null when nothing is selected. */
export async function startBoundedRedrive(o: BoundedRedriveOptions): Promise<BoundedRedriveStart | null> {
  if (o.job.status !== "COMPLETED") {
    throw new RedriveRefusedError(
      `job ${o.job.workflowId} is ${o.job.status}: a bounded job publishes its dead letters when it completes` +
        (o.job.status === "FAILED" ? ` (run it again with \`sage rerun ${o.job.workflowId}\`)` : ""),
    );
  }
  const dir = join(redrivesDir(o.dataDir, o.job.pipeline, o.job.jobId), o.redrive);
  const found = await recordOf(o, dir);
  if (!found || found.record.letters.length === 0)
    return found
      ? { record: found.record, handle: o.client.temporal.workflow.getHandle(found.record.workflowId), started: false, refused: found.refused }
      : null;
  const { record } = found;
  const jobId = redriveJobId(o.job.jobId, o.redrive);
  const stages = [
    ...new Set(
      readFileSync(join(dir, "input.jsonl"), "utf8")
        .trimEnd()
        .split("\n")
        .map((l) => (JSON.parse(l) as RedriveEnvelope).stage),
    ),
  ];
  const input: JobInput = {
    jobId,
    plan: o.target.plan,
    params: o.job.params,
    runtime: {
      ...o.client.runtimeOptions(),
      redrive: { redrive: o.redrive, input: join(dir, "input.jsonl"), stages, deadLetters: join(dir, "dead-letters.jsonl") },
    },
  };
  const summary = `sage redrive ${o.redrive} of job ${o.job.jobId}: ${record.letters.length} dead letter(s)`;
  const decorations = o.client.startDecorations(o.job.pipeline, jobId, o.target.plan, o.job.params, summary);
  try {
    const handle = await o.client.temporal.workflow.start(PIPELINE_WORKFLOW, {
      workflowId: record.workflowId,
      taskQueue: o.target.taskQueue,
      args: [input],
      // Run once, like a job id; a redrive whose job failed published nothing and may run again.
      workflowIdReusePolicy: "ALLOW_DUPLICATE_FAILED_ONLY",
      ...decorations,
      // Marks it as a redrive: its dead letters are the job's, listed and re-driven with the job.
      memo: { ...decorations.memo, redriveOf: o.job.jobId, redrive: o.redrive },
    });
    return { record, handle, started: true, refused: found.refused };
  } catch (err) {
    if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
    return { record, handle: o.client.temporal.workflow.getHandle(record.workflowId), started: false, refused: found.refused };
  }
}
