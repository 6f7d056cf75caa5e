/**
 * Payloads of a fetched history through the client's codecs: a history fetched from the server holds
 * them as written, encrypted when `security.encryption` is on. `sage rerun` reads a few of them;
 * `sage replay` checks first that all of them decode.
 */
import type { Payload, PayloadCodec } from "@temporalio/common";
import type proto from "@temporalio/proto";

type HistoryEvent = proto.temporal.api.history.v1.IHistoryEvent;
type Payloads = proto.temporal.api.common.v1.IPayloads;
type History = proto.temporal.api.history.v1.IHistory;

/** Decodes through the codecs, the last one first (they encode in order). */
async function decoded(codecs: readonly PayloadCodec[], payloads: Payloads | null | undefined): Promise<Payloads | null | undefined> {
  if (!payloads?.payloads?.length) return payloads;
  let out = payloads.payloads;
  for (const codec of [...codecs].reverse()) out = await codec.decode(out);
  return { payloads: out };
}

/** `events` with the payloads rerun reads decoded (copies; the others as they are). */
export async function withDecodedPayloads(events: HistoryEvent[], codecs: readonly PayloadCodec[]): Promise<HistoryEvent[]> {
  if (codecs.length === 0) return events;
  return Promise.all(
    events.map(async (e): Promise<HistoryEvent> => {
      const started = e.workflowExecutionStartedEventAttributes;
      if (started) return { ...e, workflowExecutionStartedEventAttributes: { ...started, input: await decoded(codecs, started.input) } };
      const scheduled = e.activityTaskScheduledEventAttributes;
      if (scheduled) return { ...e, activityTaskScheduledEventAttributes: { ...scheduled, input: await decoded(codecs, scheduled.input) } };
      const completed = e.activityTaskCompletedEventAttributes;
      if (completed) return { ...e, activityTaskCompletedEventAttributes: { ...completed, result: await decoded(codecs, completed.result) } };
      return e;
    }),
  );
}

/** Every payload under `value` (a history message tree): each object with `metadata` and binary `data`. */
function payloadsIn(value: unknown, out: Payload[] = []): Payload[] {
  if (value === null || typeof value !== "object" || value instanceof Uint8Array) return out;
  const o = value as Record<string, unknown>;
  if (o.metadata && typeof o.metadata === "object" && o.data instanceof Uint8Array) out.push(o);
  else for (const v of Array.isArray(value) ? value : Object.values(o)) payloadsIn(v, out);
  return out;
}

/**
 * Decodes every payload of `history` once, so that one the codecs cannot decode (a wrong or missing
 * key) fails with its own error, which names the key and where the keys came from, rather than as
 * a replay failure deep in the SDK's message.
 */
export async function checkDecodable(history: History, codecs: readonly PayloadCodec[]): Promise<void> {
  let payloads = payloadsIn(history);
  for (const codec of [...codecs].reverse()) payloads = await codec.decode(payloads);
}
