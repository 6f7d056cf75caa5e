/** Reading an encrypted history outside the replayer: rerun's decoded start input, and the check that every payload decodes. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { defaultPayloadConverter } from "@temporalio/common";
import type proto from "@temporalio/proto";
import { AesGcmCodec } from "../../../security/aes-gcm-codec.js";
import { PayloadDecryptionError } from "../../../security/errors.js";
import { checkDecodable, withDecodedPayloads } from "../../../replay/history-payloads.js";
import { startOf } from "../../../replay/rerun.js";
import { newKey, ringOf } from "../security/keys.js";

type HistoryEvent = proto.temporal.api.history.v1.IHistoryEvent;

async function encryptedHistory(codec: AesGcmCodec): Promise<HistoryEvent[]> {
  const input = await codec.encode([defaultPayloadConverter.toPayload({ jobId: "j1", params: { prompt: "secret" } })]);
  const result = await codec.encode([defaultPayloadConverter.toPayload({ counts: {} })]);
  return [
    { workflowExecutionStartedEventAttributes: { input: { payloads: input }, taskQueue: { name: "q" } } },
    { activityTaskCompletedEventAttributes: { result: { payloads: result } } },
  ];
}

test("rerun reads the start input of an encrypted history through the client's codecs", async () => {
  const codec = new AesGcmCodec(ringOf({ k1: newKey() }));
  const events = await encryptedHistory(codec);
  assert.throws(() => startOf(events, "wf"), "without the codec the input is not JSON");
  const { input, taskQueue } = startOf(await withDecodedPayloads(events, [codec]), "wf");
  assert.deepEqual(input, { jobId: "j1", params: { prompt: "secret" } });
  assert.equal(taskQueue, "q");
  assert.equal(await withDecodedPayloads(events, []), events, "no codecs: the events as they are");
});

test("checkDecodable passes with the right keys and names the key with the wrong ones", async () => {
  const writer = new AesGcmCodec(ringOf({ k1: newKey() }));
  const events = await encryptedHistory(writer);
  await checkDecodable({ events }, []);
  await checkDecodable({ events }, [writer]);
  await assert.rejects(checkDecodable({ events }, [new AesGcmCodec(ringOf({ k1: newKey() }, "other"))]), (err: unknown) => {
    assert.ok(err instanceof PayloadDecryptionError);
    assert.match(err.message, /key "k1" \(file \/keys\/other, line 1\)/);
    return true;
  });
});
