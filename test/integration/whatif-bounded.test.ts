/**
 * `sage whatif` against a bounded job that ran for real (dev server, no model): over the splits the
 * job recorded, the base module again gives an empty diff with every stage unit from the memo; a
 * changed tag in the second stage re-runs that stage alone and changes that field only; a stricter
 * filter removes exactly the records it drops, a looser one adds exactly those it lets through. The
 * job's output file is untouched, and an input file that is gone fails clearly.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { pino } from "pino";
import { SageClient } from "../../client/sage-client.js";
import { findJob, type BoundedJobRef } from "../../client/dlq/job-ref.js";
import type { Pipeline } from "../../core/api/pipeline.js";
import type { DiffEntry } from "../../core/whatif/output-diff.js";
import { InputUnavailableError } from "../../replay/whatif/errors.js";
import { recordedSplits, whatIfBounded, type BoundedWhatifOptions } from "../../replay/whatif/bounded-whatif.js";
import type { WhatifReport } from "../../replay/whatif/whatif.js";
import { REPO, cliEnv, readJsonl, runJob, sageCli, testConfig } from "../support/harness.js";
import base, { KEEP_BASE, whatifBounded, type Item, type Tagged } from "../fixtures/whatif-bounded.js";

const ITEMS: Item[] = Array.from({ length: 30 }, (_, id) => ({ id, n: id * 7 }));
const kept = (keep: (i: Item) => boolean): number[] => ITEMS.filter(keep).map((i) => i.id);

/** Ids of the diff's entries of one kind, sorted. */
function idsOf(entries: DiffEntry[], kind: DiffEntry["kind"]): number[] {
  return entries
    .filter((e) => e.kind === kind)
    .map((e) => (e.kind === "changed" ? (e.base as Tagged).id : (e.value as Tagged).id))
    .sort((a, b) => a - b);
}

test("bounded what-if: unchanged, changed second stage, stricter and looser filter; the job's output untouched; a gone input", async () => {
  // Small splits: the input is read as several, each a unit of the what-if.
  const config = testConfig("whatif-bounded", { "execution.split-bytes": "128b" });
  const input = join(config.dir, "items.jsonl");
  const output = join(config.dir, "tagged.jsonl");
  writeFileSync(input, ITEMS.map((i) => JSON.stringify(i)).join("\n") + "\n");
  const jobId = "whatif-bounded";
  await runJob(base, config, { input, output }, jobId);
  const expected = kept(KEEP_BASE);
  const published = readFileSync(output, "utf8");
  assert.deepEqual(
    readJsonl<Tagged>(output)
      .map((t) => t.id)
      .sort((a, b) => a - b),
    expected,
  );

  const client = await SageClient.connect({ config });
  try {
    const job = (await findJob(client, jobId)) as BoundedJobRef;
    assert.equal(job.kind, "bounded");
    const splits = await recordedSplits(client, job.workflowId);
    const splitCount = Object.values(splits).flat().length;
    assert.ok(splitCount > 1, `the input is read as several splits (${splitCount})`);
    const options = (changed: Pipeline): BoundedWhatifOptions => ({
      config,
      job,
      splits,
      base,
      changed,
      runtime: client.runtimeOptions(),
      memo: true,
      logger: pino({ level: "warn" }),
    });

    // The base again: no difference, and every stage unit of the changed side from the memo the base side filled.
    const same: WhatifReport = await whatIfBounded(options(whatifBounded({ keep: KEEP_BASE, tag: "base" })));
    assert.deepEqual(same.diff.entries, []);
    assert.deepEqual([same.units, same.counts.same, same.base.outputs], [splitCount, expected.length, expected.length]);
    assert.deepEqual([same.changed.stageRuns, same.changed.memoHits], [0, same.base.stageRuns]);

    // A changed tag in the second stage: the first stage from the memo, the second run again; the tag is all that changes.
    const retagged = await whatIfBounded(options(whatifBounded({ keep: KEEP_BASE, tag: "next" })));
    assert.deepEqual(idsOf(retagged.diff.entries, "changed"), expected);
    assert.deepEqual([retagged.counts.added, retagged.counts.removed, retagged.counts.same], [0, 0, 0]);
    for (const e of retagged.diff.entries)
      if (e.kind === "changed")
        assert.deepEqual(
          e.fields.map((f) => f.path),
          ["$.tag"],
        );
    assert.equal(retagged.changed.memoHits, splitCount, "each first-stage unit from the memo");
    assert.equal(retagged.changed.stageRuns, same.base.stageRuns - splitCount, "each second-stage unit run again");

    // A stricter filter removes exactly what it drops; a looser one adds exactly what it lets through.
    const stricter = (i: Item): boolean => KEEP_BASE(i) && i.id % 5 !== 0;
    const fewer = await whatIfBounded(options(whatifBounded({ keep: stricter, tag: "base" })));
    assert.deepEqual(
      idsOf(fewer.diff.entries, "removed"),
      expected.filter((id) => !kept(stricter).includes(id)),
    );
    assert.deepEqual([fewer.counts.added, fewer.counts.changed, fewer.counts.same], [0, 0, kept(stricter).length]);
    const looser = (i: Item): boolean => i.id % 6 !== 0;
    const more = await whatIfBounded(options(whatifBounded({ keep: looser, tag: "base" })));
    assert.deepEqual(
      idsOf(more.diff.entries, "added"),
      kept(looser).filter((id) => !expected.includes(id)),
    );
    assert.deepEqual([more.counts.removed, more.counts.changed, more.counts.same], [0, 0, expected.length]);

    // Nothing reached the job's sink.
    assert.equal(readFileSync(output, "utf8"), published);

    // The CLI: a bounded job needs --base; with it, the base module again is an empty diff.
    const env = cliEnv(config);
    const module = join(REPO, "test", "fixtures", "whatif-bounded.ts");
    const noBase = sageCli(["whatif", jobId, "--module", module], { env });
    assert.equal(noBase.code, 2, noBase.stderr);
    assert.match(noBase.stderr, /is bounded: give --base/);
    const printed = sageCli(["whatif", jobId, "--module", module, "--base", module, "--json"], { env });
    assert.equal(printed.code, 0, printed.stderr);
    const json = JSON.parse(printed.stdout) as Omit<WhatifReport, "diff"> & { entries: DiffEntry[] };
    assert.deepEqual(json.counts, { added: 0, removed: 0, changed: 0, same: expected.length });
    assert.equal(json.splits?.length, splitCount);

    // The input file gone: the what-if says which split read it.
    renameSync(input, `${input}.moved`);
    await assert.rejects(whatIfBounded(options(base)), (err: unknown) => err instanceof InputUnavailableError && err.path === input);
  } finally {
    await client.close();
  }
});
