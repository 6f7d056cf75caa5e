/**
 * A bounded redrive job on the in-memory host: each dead letter enters at the operator it failed in
 * (in the source's stage, across a stage edge, or decoded again by the source), the output is
 * appended to the job's, and what fails again is a dead letter with its history.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { definePipeline } from "../../../core/api/pipeline.js";
import { FileSink, FileSource } from "../../../core/api/connectors.js";
import { NonRetryableError } from "../../../core/errors.js";
import { redriveEntryOf } from "../../../core/plan/redrive.js";
import { letterFromLine } from "../../../client/dlq/letters.js";
import { envelopeOf } from "../../../client/dlq/bounded-redrive.js";
import { MemoryHost, readJsonl } from "./memory-host.js";

interface Row {
  n: number;
  bad?: boolean;
  wide?: boolean;
  hopeless?: boolean;
}

/** lines -> check -> [edge] widen (parallelism 2) -> out; `fixed`: the bug in check and widen mended. */
const rows = (fixed: boolean) =>
  definePipeline("unit-redrive", (env) =>
    env
      .fromSource(FileSource.jsonl<Row>(env.param("input")), { name: "lines" })
      .map(
        (r: Row) => {
          if (r.hopeless) throw new NonRetryableError(`hopeless row ${r.n}`);
          if (r.bad && !fixed) throw new NonRetryableError(`bad row ${r.n}`);
          return r;
        },
        { name: "check" },
      )
      .map(
        (r: Row) => {
          if (r.wide && !fixed) throw new NonRetryableError(`too wide ${r.n}`);
          return { n: r.n, fixed };
        },
        { name: "widen", parallelism: 2 },
      )
      .sink(FileSink.jsonl(env.param("output")), { name: "out", parallelism: 2 }),
  );

test("a redrive job re-runs each dead letter from the operator it failed in, appends the output, and keeps the history of what fails again", async () => {
  const first = new MemoryHost(rows(false));
  const fixed = new MemoryHost(rows(true));
  try {
    const input = first.path("rows.jsonl");
    const output = first.path("out.jsonl");
    const data: Row[] = Array.from({ length: 10 }, (_, n) => ({
      n,
      ...(n === 2 ? { bad: true } : {}),
      ...(n === 5 ? { wide: true } : {}),
      ...(n === 7 ? { hopeless: true } : {}),
    }));
    writeFileSync(input, [...data.map((r) => JSON.stringify(r)), "{oops"].join("\n") + "\n");
    const job = await first.run("j1", { input, output });
    assert.deepEqual(
      readJsonl<{ n: number }>(output)
        .map((r) => r.n)
        .sort(),
      [0, 1, 3, 4, 6, 8, 9],
    );
    const lines = readFileSync(job.commit.deadLetterPath!, "utf8").trimEnd().split("\n");
    const letters = lines.map((text, i) => letterFromLine("j1", i + 1, text));
    assert.deepEqual(letters.map((l) => l.operator).sort(), ["check", "check", "lines", "widen"]);

    const { plan } = fixed.registry.compile(1, true);
    const envelopes = letters.map((l) => {
      const entry = redriveEntryOf(plan, l.operator, l.key);
      assert.ok("stage" in entry, JSON.stringify(entry));
      return envelopeOf(l, entry.stage, "r-unit");
    });
    assert.ok(
      envelopes.every((e) => e.stage === "s0"),
      "every letter enters through the source's stage, widen's by its edge",
    );
    const redriveInput = fixed.path("input.jsonl");
    writeFileSync(redriveInput, envelopes.map((e) => JSON.stringify(e)).join("\n") + "\n");
    const deadAgain = fixed.path("dead-letters.jsonl");
    const redrive = await fixed.run(
      "j1.r-unit",
      { input, output },
      { runtime: { redrive: { redrive: "r-unit", input: redriveInput, stages: ["s0"], deadLetters: deadAgain } } },
    );

    const out = readJsonl<{ n: number; fixed: boolean }>(output);
    assert.equal(out.length, 9, "7 before, 2 appended");
    assert.deepEqual(
      out
        .slice(7)
        .map((r) => [r.n, r.fixed])
        .sort(),
      [
        [2, true],
        [5, true],
      ],
    );
    // Nothing upstream of a letter's operator ran again: the source decoded only its own letter's line.
    assert.equal(redrive.counts.lines!.in, 1);
    assert.equal(redrive.counts.check!.in, 2);
    assert.equal(redrive.counts.widen!.in, 2);
    assert.equal(redrive.commit.deadLetterPath, deadAgain);
    const again = readJsonl<{ operator: string; record: unknown; redrive: string; history: Array<{ job: string; operator: string; error: string }> }>(
      deadAgain,
    );
    assert.deepEqual(again.map((l) => [l.operator, l.redrive, l.history.map((f) => [f.job, f.operator, f.error])]).sort(), [
      ["check", "r-unit", [["j1", "check", "NonRetryableError: hopeless row 7"]]],
      ["lines", "r-unit", [["j1", "lines", letters.find((l) => l.operator === "lines")!.error]]],
    ]);
    assert.deepEqual(again.find((l) => l.operator === "lines")!.record, "{oops");
  } finally {
    await first.close();
    await fixed.close();
  }
});
