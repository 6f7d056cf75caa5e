/**
 * A streaming redrive, exactly once: the selected dead letters go to the target job's redrive topic
 * (which its shim reads like a source, into the operator each failed in) in Kafka transactions, each
 * also writing to the ledger topic which letters it sent. The transactional id is the job's, so a
 * redrive run again after an interruption first fences the interrupted one (its open transaction is
 * aborted: read_committed readers never see it), then reads the ledger and sends only what no
 * committed transaction sent. The selection is fixed when the redrive starts (the dead-letter
 * topic's end offsets then, in the ledger): a re-driven record that fails again is a new letter,
 * past that end, and is not sent again by the same redrive.
 */
import type { KafkaClient, OutgoingMessage, ProducerTransaction } from "../../connectors/kafka/client.js";
import { REDRIVE_HEADERS, redriveEntryOf, redriveLedgerTopicOf, redriveTopicOf, withFailure } from "../../core/plan/redrive.js";
import type { PhysicalPlan } from "../../core/plan/physical.js";
import { failureOf, type DeadLetter } from "./letters.js";
import { matches, type LetterFilter } from "./selection.js";
import { ensureTopics, positionOfId, readLedger, readTopicLetters, sentLetters, type LedgerRecord } from "./topic-letters.js";
import { RedriveConflictError } from "./errors.js";

/** Options of a streaming redrive. */
export interface StreamRedriveOptions {
  kafka: KafkaClient;
  pipeline: string;
  deadLetterTopic: string;
  /** The job whose dead letters are re-driven. */
  job: string;
  /** The running job they are sent into (the job itself, or one running a fixed version). */
  target: string;
  /** Its plan: where each record enters. */
  plan: Pick<PhysicalPlan, "nodes" | "stages" | "edges">;
  filter: LetterFilter;
  redrive: string;
  /** Letters per transaction (default 500). */
  chunk?: number;
  /** Called before each commit with the chunk's index (tests stop a redrive there). */
  beforeCommit?: (chunk: number) => Promise<void>;
}

/** What a redrive did. */
export interface RedriveReport {
  redrive: string;
  /** Letters sent by this call. */
  sent: number;
  /** Letters an earlier, interrupted call of the same redrive had sent. */
  sentBefore: number;
  /** True when the redrive had finished before this call: nothing was sent. */
  alreadyDone: boolean;
  /** Selected letters that cannot enter the target's plan, and why. */
  refused: Array<{ id: string; reason: string }>;
}

/** The transactional id of a job's redrives: one at a time per job, a new one fencing an older. */
export function redriveTransactionalId(pipeline: string, job: string): string {
  return `sage.redrive.${pipeline}.${job}`;
}

/** The re-driven record of `letter`: its bytes as they were, where it failed and its history in headers. */
function redrivenMessage(letter: DeadLetter, redrive: string): OutgoingMessage {
  const timestamp = letter.timestamp ?? (letter.at ? Date.parse(letter.at) : null);
  return {
    key: letter.kafka?.key ?? null,
    value: letter.kafka?.value ?? null,
    ...(timestamp !== null ? { timestamp: String(timestamp) } : {}),
    headers: {
      [REDRIVE_HEADERS.operator]: letter.operator,
      [REDRIVE_HEADERS.redrive]: redrive,
      [REDRIVE_HEADERS.history]: JSON.stringify(withFailure(letter.history, failureOf(letter))),
      [REDRIVE_HEADERS.origin]: letter.source ?? letter.id,
      ...(letter.key !== null ? { "sage-key": letter.key } : {}),
    },
  };
}

/** The start record of `o.redrive` in the ledger, checked against this request; a new one when there is none. */
async function startOf(o: StreamRedriveOptions, ledger: LedgerRecord[]): Promise<{ start: Extract<LedgerRecord, { type: "start" }>; fresh: boolean }> {
  const earlier = ledger.find((r): r is Extract<LedgerRecord, { type: "start" }> => r.type === "start" && r.redrive === o.redrive && r.job === o.job);
  if (earlier) {
    const same = JSON.stringify(earlier.filter) === JSON.stringify(o.filter) && earlier.target === o.target;
    if (!same)
      throw new RedriveConflictError(
        o.redrive,
        `redrive ${o.redrive} of job ${o.job} was started with ${JSON.stringify(earlier.filter)} into ${earlier.target}; this request differs`,
      );
    return { start: earlier, fresh: false };
  }
  const admin = await o.kafka.admin();
  let upTo: Record<string, number>;
  try {
    upTo = Object.fromEntries((await admin.partitionOffsets(o.deadLetterTopic)).map((p) => [String(p.partition), Number(p.high)]));
  } finally {
    await admin.close();
  }
  return { start: { type: "start", redrive: o.redrive, job: o.job, target: o.target, filter: o.filter, upTo, at: new Date().toISOString() }, fresh: true };
}

/** Letters of the selection not yet sent: below the start's end offsets, matching, untaken, able to enter the plan. */
function selection(o: StreamRedriveOptions, letters: DeadLetter[], start: Extract<LedgerRecord, { type: "start" }>, takenBy: Map<string, string>) {
  const send: DeadLetter[] = [];
  const refused: RedriveReport["refused"] = [];
  for (const l of letters) {
    const at = positionOfId(l.id);
    if (!at || at.offset >= (start.upTo[String(at.partition)] ?? 0)) continue;
    if (!matches(l, o.filter) || takenBy.has(l.id)) continue;
    const entry = redriveEntryOf(o.plan, l.operator, l.key);
    if ("refused" in entry) refused.push({ id: l.id, reason: entry.refused });
    else send.push(l);
  }
  return { send, refused };
}

/** Runs (or resumes) a streaming redrive. */
export async function redriveStream(o: StreamRedriveOptions): Promise<RedriveReport> {
  const ledgerTopic = redriveLedgerTopicOf(o.deadLetterTopic);
  await ensureTopics(o.kafka, [
    { name: o.deadLetterTopic },
    { name: ledgerTopic, configs: { "retention.ms": "-1" } },
    { name: redriveTopicOf(o.pipeline, o.target), configs: { "retention.ms": "-1" } },
  ]);
  const producer = o.kafka.transactionalProducer(redriveTransactionalId(o.pipeline, o.job));
  try {
    // Begin first: it claims the transactional id, which fences an interrupted run of this redrive and aborts its open transaction.
    let tx: ProducerTransaction = await producer.begin();
    const ledger = await readLedger(o.kafka, o.deadLetterTopic);
    const mine = ledger.filter((r) => r.redrive === o.redrive && r.job === o.job);
    const sentBefore = mine.reduce((n, r) => n + (r.type === "sent" ? r.letters.length : 0), 0);
    // A transaction begun and never sent to is left behind unsent: nothing of it reaches the broker.
    if (mine.some((r) => r.type === "done")) return { redrive: o.redrive, sent: 0, sentBefore, alreadyDone: true, refused: [] };
    const { start, fresh } = await startOf(o, ledger);
    const letters = await readTopicLetters(o.kafka, o.deadLetterTopic, o.job);
    const { send, refused } = selection(o, letters, start, sentLetters(ledger));
    // Nothing selected: nothing recorded either, so the same request can find letters later.
    if (fresh && send.length === 0) return { redrive: o.redrive, sent: 0, sentBefore: 0, alreadyDone: false, refused };
    const ledgerMessage = (r: LedgerRecord) => ({ topic: ledgerTopic, message: { key: o.redrive, value: JSON.stringify(r) } });
    const size = Math.max(1, o.chunk ?? 500);
    const chunks = Math.max(1, Math.ceil(send.length / size));
    for (let c = 0; c < chunks; c++) {
      const part = send.slice(c * size, (c + 1) * size);
      const messages = part.map((l) => ({ topic: redriveTopicOf(o.pipeline, o.target), message: redrivenMessage(l, o.redrive) }));
      if (c === 0 && fresh) messages.unshift(ledgerMessage(start));
      if (part.length > 0) messages.push(ledgerMessage({ type: "sent", redrive: o.redrive, job: o.job, letters: part.map((l) => l.id) }));
      if (c === chunks - 1)
        messages.push(ledgerMessage({ type: "done", redrive: o.redrive, job: o.job, sent: sentBefore + send.length, at: new Date().toISOString() }));
      await tx.send(messages);
      await o.beforeCommit?.(c);
      await tx.commit();
      if (c < chunks - 1) tx = await producer.begin();
    }
    return { redrive: o.redrive, sent: send.length, sentBefore, alreadyDone: false, refused };
  } finally {
    await producer.close();
  }
}
