/**
 * The dead letters of any job, bounded or streaming, each with where it stands: outstanding, or
 * taken by a redrive (and which). What `sage dlq list` and `show` read.
 */
import type { SageConfig } from "../../core/config/schema.js";
import type { KafkaClient } from "../../connectors/kafka/client.js";
import { deadLetterTopicOf } from "../../connectors/kafka/index.js";
import type { SageClient } from "../sage-client.js";
import { boundedLetters } from "./file-letters.js";
import type { JobRef } from "./job-ref.js";
import type { DeadLetter } from "./letters.js";
import { streamingLetters } from "./topic-letters.js";

/** A dead letter and the redrive that took it (null: outstanding). */
export interface LetterState {
  letter: DeadLetter;
  redrivenBy: string | null;
}

/** A redrive of the job, as `list` reports it. */
export interface RedriveSummary {
  redrive: string;
  letters: number;
  /** A bounded redrive's job status; a streaming redrive's RUNNING (started, not done) or COMPLETED. */
  status: string;
  at: string;
}

/** Where a job's dead letters are read from. */
export interface LetterSource {
  client: SageClient;
  config: SageConfig;
  /** Streaming jobs only. */
  kafka: () => KafkaClient;
}

/** The job's dead letters with their state, and its redrives. */
export async function lettersOfJob(src: LetterSource, job: JobRef): Promise<{ states: LetterState[]; redrives: RedriveSummary[]; from: string }> {
  if (job.kind === "bounded") {
    const { letters, takenBy, redrives } = await boundedLetters(src.client, src.config["data-dir"], job);
    return {
      states: letters.map((letter) => ({ letter, redrivenBy: takenBy.get(letter.id) ?? null })),
      redrives: redrives.map((r) => ({ redrive: r.redrive, letters: r.letters.length, status: r.status, at: r.at })),
      from: job.deadLetterPath ?? "(no dead-letter file)",
    };
  }
  const topic = deadLetterTopicOf(src.config, job.pipeline);
  const { letters, ledger, takenBy } = await streamingLetters(src.kafka(), topic, job.jobId);
  const redrives = new Map<string, RedriveSummary>();
  for (const r of ledger) {
    if (r.job !== job.jobId) continue;
    const s = redrives.get(r.redrive) ?? { redrive: r.redrive, letters: 0, status: "RUNNING", at: "" };
    if (r.type === "start") s.at = r.at;
    if (r.type === "sent") s.letters += r.letters.length;
    if (r.type === "done") s.status = "COMPLETED";
    redrives.set(r.redrive, s);
  }
  return { states: letters.map((letter) => ({ letter, redrivenBy: takenBy.get(letter.id) ?? null })), redrives: [...redrives.values()], from: topic };
}
