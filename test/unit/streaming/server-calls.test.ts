/** The shim's server calls: a run of failures renews the connection once it has lasted long enough, and not more often. */
import { test } from "node:test";
import assert from "node:assert/strict";
import pino from "pino";
import { WorkflowNotFoundError, type Client } from "@temporalio/client";
import type { SageClient } from "../../../client/sage-client.js";
import { ServerCalls } from "../../../streaming/shim/server-calls.js";

/** A stand-in for the client: only `temporal.withDeadline` and `renewConnection`, which count what they get. */
function fakeClient() {
  const deadlines: number[] = [];
  let renewals = 0;
  const temporal = {
    withDeadline: <R>(deadline: number, fn: () => Promise<R>) => {
      deadlines.push(deadline);
      return fn();
    },
  } as unknown as Client;
  const client = {
    temporal,
    renewConnection: () => {
      renewals++;
      return Promise.resolve();
    },
  } as unknown as SageClient;
  return { client, deadlines, renewals: () => renewals };
}

const unavailable = () => Promise.reject(new Error("14 UNAVAILABLE: connection refused"));

test("each call carries its deadline; failures renew the connection only after lasting 20 s, then at most every 20 s", async () => {
  const { client, deadlines, renewals } = fakeClient();
  let now = 1_000_000;
  const calls = new ServerCalls(client, pino({ level: "silent" }), 20_000, () => now);
  assert.equal(await calls.run(5_000, () => Promise.resolve("ok")), "ok");
  assert.deepEqual(deadlines, [1_005_000]);
  // Failing from now, once a second, for 19 s.
  for (let s = 0; s <= 19; s++) {
    await assert.rejects(calls.run(5_000, unavailable), /UNAVAILABLE/);
    if (s < 19) now += 1_000;
  }
  assert.equal(renewals(), 0, "19 s of failures: no renewal yet");
  now += 1_000;
  await assert.rejects(calls.run(5_000, unavailable));
  assert.equal(renewals(), 1, "20 s of failures: one renewal");
  now += 10_000;
  await assert.rejects(calls.run(5_000, unavailable));
  assert.equal(renewals(), 1, "not again within 20 s");
  now += 10_000;
  await assert.rejects(calls.run(5_000, unavailable));
  assert.equal(renewals(), 2, "again once 20 s have passed");
});

test("a success, or an answer such as workflow-not-found, ends the run of failures", async () => {
  const { client, renewals } = fakeClient();
  let now = 0;
  const calls = new ServerCalls(client, pino({ level: "silent" }), 20_000, () => now);
  await assert.rejects(calls.run(1_000, unavailable));
  now += 15_000;
  await assert.rejects(
    calls.run(1_000, () => Promise.reject(new WorkflowNotFoundError("gone", "wf", undefined))),
    WorkflowNotFoundError,
  );
  now += 10_000;
  await assert.rejects(calls.run(1_000, unavailable));
  assert.equal(renewals(), 0, "the answer in between reset the run: 10 s, not 25 s");
  now += 15_000;
  await calls.run(1_000, () => Promise.resolve(1));
  now += 10_000;
  await assert.rejects(calls.run(1_000, unavailable));
  assert.equal(renewals(), 0);
});
