/**
 * The payloads `sage rerun` reads from a fetched history (the start input, stage activity inputs
 * and results), decoded by the client's codecs: a history fetched from the server holds them as
 * written, encrypted when `security.encryption` is on.
 */
import type { PayloadCodec } from "@temporalio/common";
import type proto from "@temporalio/proto";

type HistoryEvent = proto.temporal.api.history.v1.IHistoryEvent;
type Payloads = proto.temporal.api.common.v1.IPayloads;

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
