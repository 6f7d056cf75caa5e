/** Unit tests of the parameter check submit makes: which `env.param` placeholders a plan needs, and who needs them. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { definePipeline } from "../../core/api/pipeline.js";
import { FileSink, FileSource } from "../../core/api/connectors.js";
import { MissingParameterError } from "../../core/errors.js";
import { checkParameters, missingParameters } from "../../core/plan/parameters.js";

const twoSinks = definePipeline("two-sinks", (env) => {
  env.setDeadLetterSink(FileSink.jsonl(env.param("dead")));
  const lines = env.fromSource(FileSource.lines(env.param("input")), { name: "lines" });
  lines.sink(FileSink.jsonl(env.param("output")), { name: "all" });
  lines.filter((l: string) => l !== "", { name: "non-empty" }).sink(FileSink.jsonl(env.param("output")), { name: "kept" });
  lines.sink(FileSink.jsonl(env.param("extra", { default: "extra.jsonl" })), { name: "extra" });
});
const { plan } = twoSinks.compile({ parallelism: 2 });

test("every placeholder without a default is needed, with each operator that reads it", () => {
  assert.deepEqual(missingParameters(plan, {}), [
    { name: "input", neededBy: ['source "lines"'] },
    { name: "output", neededBy: ['sink "all"', 'sink "kept"'] },
    { name: "dead", neededBy: ["dead-letter sink"] },
  ]);
  assert.deepEqual(missingParameters(plan, { input: "in.txt", output: "out.jsonl", dead: "dead.jsonl" }), []);
  // An empty value is a value: the worker takes it as given too.
  assert.deepEqual(missingParameters(plan, { input: "", output: "o", dead: "d" }), []);
});

test("checkParameters names every missing parameter, who needs it, and the flags to pass", () => {
  assert.throws(
    () => checkParameters(plan, { input: "in.txt" }),
    (err: unknown) => {
      assert.ok(err instanceof MissingParameterError);
      assert.equal(err.parameter, "output");
      assert.equal(
        err.message,
        'pipeline "two-sinks" needs job parameters "output" (needed by sink "all", sink "kept"), "dead" (needed by dead-letter sink), which were not given (pass --param output=... --param dead=...)',
      );
      return true;
    },
  );
  assert.doesNotThrow(() => checkParameters(plan, { input: "in.txt", output: "out.jsonl", dead: "dead.jsonl" }));
});
