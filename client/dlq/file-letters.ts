/**
 * A bounded job's dead letters: its published dead-letter file, and its redrives kept under
 * `<data-dir>/redrive/<pipeline>/<job>/<redrive>/` (what each selected, the records that failed
 * again there). A letter a redrive took counts as re-driven while that redrive has not failed.
 */
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { WorkflowNotFoundError } from "@temporalio/client";
import { jobFileName } from "../../core/names.js";
import type { SageClient } from "../sage-client.js";
import { letterFromLine, type DeadLetter } from "./letters.js";
import type { LetterFilter } from "./selection.js";
import type { BoundedJobRef } from "./job-ref.js";

/** What `redrive.json` of a bounded redrive records when it is first started. */
export interface BoundedRedriveRecord {
  redrive: string;
  job: string;
  filter: LetterFilter;
  /** Plan hash the records are re-driven through. */
  target: string;
  /** The redrive job's workflow id. */
  workflowId: string;
  /** Ids of the letters it selected. */
  letters: string[];
  at: string;
}

/** A redrive of a bounded job and where its job stands. */
export interface BoundedRedrive extends BoundedRedriveRecord {
  dir: string;
  /** Temporal status of its job, or NOT_STARTED (interrupted between its record and its start). */
  status: string;
}

/** Statuses after which a redrive's letters are outstanding again (its job published nothing). */
export const FAILED_STATUSES: ReadonlySet<string> = new Set(["FAILED", "TERMINATED", "CANCELED", "CANCELLED", "TIMED_OUT"]);

/** Folder of the redrives of a bounded job. */
export function redrivesDir(dataDir: string, pipeline: string, jobId: string): string {
  return resolve(dataDir, "redrive", pipeline, jobFileName(jobId));
}

/** The job id of a bounded redrive job. */
export function redriveJobId(jobId: string, redrive: string): string {
  return `${jobId}.${redrive}`;
}

/** The letters of a dead-letter file (none when it does not exist). */
function lettersOfFile(path: string, fileJob: string): DeadLetter[] {
  if (!existsSync(path)) return [];
  const lines = readFileSync(path, "utf8").split("\n");
  const out: DeadLetter[] = [];
  lines.forEach((text, i) => {
    if (text.trim() !== "") out.push(letterFromLine(fileJob, i + 1, text));
  });
  return out;
}

/** Status of a redrive's job. */
async function statusOf(client: SageClient, workflowId: string): Promise<string> {
  try {
    return (await client.temporal.workflow.getHandle(workflowId).describe()).status.name;
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return "NOT_STARTED";
    throw err;
  }
}

/** The redrives of a bounded job, oldest first. */
export async function boundedRedrives(client: SageClient, dataDir: string, job: Pick<BoundedJobRef, "pipeline" | "jobId">): Promise<BoundedRedrive[]> {
  const dir = redrivesDir(dataDir, job.pipeline, job.jobId);
  if (!existsSync(dir)) return [];
  const out: BoundedRedrive[] = [];
  for (const name of readdirSync(dir).sort()) {
    const record = join(dir, name, "redrive.json");
    if (!existsSync(record)) continue;
    const r = JSON.parse(readFileSync(record, "utf8")) as BoundedRedriveRecord;
    out.push({ ...r, dir: join(dir, name), status: await statusOf(client, r.workflowId) });
  }
  return out.sort((a, b) => a.at.localeCompare(b.at));
}

/** A bounded job's dead letters (its own and those that failed again in its redrives), and which redrive took each. */
export async function boundedLetters(client: SageClient, dataDir: string, job: BoundedJobRef) {
  const redrives = await boundedRedrives(client, dataDir, job);
  const letters = job.deadLetterPath ? lettersOfFile(job.deadLetterPath, job.jobId) : [];
  for (const r of redrives) letters.push(...lettersOfFile(join(r.dir, "dead-letters.jsonl"), redriveJobId(job.jobId, r.redrive)));
  const takenBy = new Map<string, string>();
  for (const r of redrives) if (!FAILED_STATUSES.has(r.status)) for (const id of r.letters) takenBy.set(id, r.redrive);
  return { letters, takenBy, redrives };
}
