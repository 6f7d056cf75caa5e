/** Unit test of the pause watcher: a blocked event loop reaches the log, once, with its length. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { pino } from "pino";
import { watchPauses } from "../../cli/pauses.js";

test("a blocked event loop is logged with how long it was blocked", async () => {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split("\n").filter(Boolean)) lines.push(JSON.parse(l) as Record<string, unknown>);
      done();
    },
  });
  const stop = watchPauses(pino({ level: "debug" }, sink));
  try {
    await new Promise((r) => setTimeout(r, 150));
    const until = Date.now() + 500;
    while (Date.now() < until); // the loop runs nothing for 500 ms
    await new Promise((r) => setTimeout(r, 150));
  } finally {
    stop();
  }
  const blocked = lines.filter((l) => l.msg === "event loop blocked");
  assert.equal(blocked.length, 1, JSON.stringify(lines));
  // At least the 500 ms block less one 100 ms tick that may have been under way.
  assert.ok((blocked[0]!.blockedMs as number) >= 350, JSON.stringify(blocked[0]));
});
