/**
 * Micro-batching: cuts a fetched partition batch into micro-batches by record count and bytes (and,
 * in a pipeline with LLM operators under a tokens-per-minute limit, by estimated tokens:
 * `core/plan/batch-tokens.ts`), and encodes each for its signal. The fetch wait (the buffer
 * timeout) bounds how long a batch waits.
 */
import type { BatchDescription } from "../../core/plan/stream.js";
import { recordTokens, type BatchTokens } from "../../core/plan/batch-tokens.js";
import { encodeBatch, messageBytes } from "../../connectors/kafka/batch-codec.js";
import type { PartitionBatch } from "../../connectors/kafka/client.js";

/** A micro-batch cut from a fetch, encoded, waiting for its signal. */
export interface Outgoing {
  /** Its description, but for `cutAt` (set when its signal is sent). */
  meta: Omit<BatchDescription, "cutAt">;
  /** The records, gzip'd (`encodeBatch`). */
  records: Uint8Array;
  /** Produce time of its first record (ms). */
  firstAt: number;
}

/** Most records and bytes of keys and values in one micro-batch. */
export interface BatchLimits {
  maxBatchRecords: number;
  /** A single record larger than this still makes a batch of its own. */
  maxBatchBytes: number;
  /** Token sizing of an LLM pipeline's batches (a record over it alone still makes a batch); absent: none. */
  tokens?: BatchTokens | null;
}

/** The micro-batches of one fetched partition batch, in offset order. */
export function cutBatches(batch: PartitionBatch, limits: BatchLimits): Outgoing[] {
  const { messages } = batch;
  const out: Outgoing[] = [];
  for (let i = 0; i < messages.length;) {
    let j = i;
    let bytes = 0;
    let tokens = 0;
    while (j < messages.length && j - i < limits.maxBatchRecords) {
      const size = messageBytes(messages[j]!);
      if (j > i && bytes + size > limits.maxBatchBytes) break;
      if (limits.tokens) {
        const t = recordTokens(limits.tokens, size);
        if (j > i && tokens + t > limits.tokens.maxTokens) break;
        tokens += t;
      }
      bytes += size;
      j++;
    }
    const slice = messages.slice(i, j);
    const meta = {
      topic: batch.topic,
      partition: batch.partition,
      from: Number(slice[0]!.offset),
      to: Number(slice[slice.length - 1]!.offset),
      count: slice.length,
      bytes,
    };
    out.push({ meta, records: encodeBatch(slice), firstAt: Number(slice[0]!.timestamp) });
    i = j;
  }
  return out;
}
