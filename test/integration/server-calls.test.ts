/**
 * The shim's server calls against the real dev server, through a proxy that goes silent for a few
 * seconds, as a restarting server can: the gRPC channel that reconnected into the silence stays
 * stuck after the server answers again, and the calls recover only by the connection renewal.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import pino from "pino";
import { SageClient } from "../../client/sage-client.js";
import { ServerCalls } from "../../streaming/shim/server-calls.js";
import { testConfig, until } from "../support/harness.js";
import { startSilentProxy } from "../support/silent-proxy.js";

test("calls caught by a silent server recover by a fresh connection once they have failed for the renewal window", async () => {
  const base = testConfig("server-calls");
  const proxy = await startSilentProxy(base.temporal.address);
  const client = await SageClient.connect({ config: { ...base, temporal: { ...base.temporal, address: proxy.address } } });
  const calls = new ServerCalls(client, pino({ level: "silent" }), 5_000);
  const systemInfo = () => calls.run(2_000, () => client.connection.workflowService.getSystemInfo({}));
  try {
    await systemInfo();
    proxy.silence();
    await assert.rejects(systemInfo(), /DEADLINE_EXCEEDED/, "the silent proxy answers nothing");
    proxy.forward();
    // The server answers through the proxy again; the channel that connected into the silence does not.
    const failures: string[] = [];
    await until(
      "a call through a fresh connection",
      () =>
        systemInfo().then(
          () => true,
          (err: Error) => void failures.push(err.message.slice(0, 60)),
        ),
      60_000,
    );
    assert.ok(calls.renewals >= 1, `recovered by a renewal, after ${failures.length} failed calls: ${failures.join("; ")}`);
    assert.ok(failures.length >= 1, "the calls right after the silence still failed");
  } finally {
    await client.close();
    await proxy.close();
  }
});
