/**
 * A streaming job's dead letters: the records of the pipeline's dead-letter topic that its runs (or
 * its redrives) wrote, read with read_committed to the topic's end, and the redrive ledger topic
 * beside it, whose records say which letters each redrive sent (committed in the same
 * transactions as the re-driven records themselves).
 */
import type { KafkaClient } from "../../connectors/kafka/client.js";
import { redriveLedgerTopicOf } from "../../core/plan/redrive.js";
import type { LetterFilter } from "./selection.js";
import { letterFromMessage, type DeadLetter } from "./letters.js";

/** A record of the redrive ledger topic. */
export type LedgerRecord =
  | {
      type: "start";
      redrive: string;
      job: string;
      /** The job the records are sent into. */
      target: string;
      filter: LetterFilter;
      /** Per dead-letter partition, the end offset when the redrive started: it selects only letters below it. */
      upTo: Record<string, number>;
      at: string;
    }
  | { type: "sent"; redrive: string; job: string; letters: string[] }
  | { type: "done"; redrive: string; job: string; sent: number; at: string };

/** Creates `topics` (one partition) where missing, so reading them finds something. */
export async function ensureTopics(kafka: KafkaClient, topics: Array<{ name: string; configs?: Record<string, string> }>): Promise<void> {
  const admin = await kafka.admin();
  try {
    for (const t of topics) await admin.ensureTopic(t.name, 1, t.configs);
  } finally {
    await admin.close();
  }
}

/** Every committed record of the redrive ledger topic of `deadLetterTopic`. */
export async function readLedger(kafka: KafkaClient, deadLetterTopic: string): Promise<LedgerRecord[]> {
  const messages = await kafka.readToEnd(redriveLedgerTopicOf(deadLetterTopic));
  return messages.flatMap((m) => {
    try {
      return [JSON.parse(m.value?.toString("utf8") ?? "null") as LedgerRecord].filter((r) => r !== null && typeof r === "object");
    } catch {
      return [];
    }
  });
}

/** The dead letters of job `jobId` in `deadLetterTopic` (written by it, or by a job its records were re-driven into). */
export async function readTopicLetters(kafka: KafkaClient, deadLetterTopic: string, jobId: string): Promise<DeadLetter[]> {
  const messages = await kafka.readToEnd(deadLetterTopic);
  return messages
    .sort((a, b) => a.partition - b.partition || Number(a.offset) - Number(b.offset))
    .flatMap((m) => {
      const letter = letterFromMessage(deadLetterTopic, m);
      return letter && (letter.origin === jobId || letter.job === jobId) ? [letter] : [];
    });
}

/** Ids of the letters the ledger says were sent, by the redrive that sent them. */
export function sentLetters(ledger: readonly LedgerRecord[]): Map<string, string> {
  const takenBy = new Map<string, string>();
  for (const r of ledger) if (r.type === "sent") for (const id of r.letters) takenBy.set(id, r.redrive);
  return takenBy;
}

/** The partition and offset of a topic letter id (`topic[p]@offset`). */
export function positionOfId(id: string): { partition: number; offset: number } | null {
  const m = /\[(\d+)\]@(\d+)$/.exec(id);
  return m ? { partition: Number(m[1]), offset: Number(m[2]) } : null;
}

/** A streaming job's letters and which redrive took each. */
export async function streamingLetters(kafka: KafkaClient, deadLetterTopic: string, jobId: string) {
  await ensureTopics(kafka, [{ name: deadLetterTopic }, { name: redriveLedgerTopicOf(deadLetterTopic), configs: { "retention.ms": "-1" } }]);
  const [letters, ledger] = await Promise.all([readTopicLetters(kafka, deadLetterTopic, jobId), readLedger(kafka, deadLetterTopic)]);
  return { letters, ledger, takenBy: sentLetters(ledger) };
}
