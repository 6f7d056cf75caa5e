/**
 * How the RAG example asks the model and trims its answer, without a model: the prompt carries the
 * best sources unwrapped, the answer keeps its first complete sentences, one line, none twice.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { firstSentences, PROMPT_SOURCES, sourcesPrompt } from "./prompt.js";

test("firstSentences keeps up to two complete sentences on one line, none twice, and marks a cut answer", () => {
  assert.equal(firstSentences("It runs. It stops.\nIt runs again."), "It runs. It stops.");
  assert.equal(firstSentences("It runs. It runs. It stops."), "It runs. It stops.");
  assert.equal(firstSentences("Use `sage.dev` (see [1]). Here's how:"), "Use `sage.dev` (see [1]).");
  assert.equal(firstSentences("It runs. It stops because the", 2), "It runs.");
  assert.equal(firstSentences("Yes! Really? No.", 1), "Yes!");
  assert.equal(firstSentences("The models are:"), "The models are…");
  assert.equal(firstSentences("  "), "");
});

test("sourcesPrompt: the best sources, one line per paragraph, in the system message; the question alone last", () => {
  const hits = ["a.md", "b.md", "c.md"].map((source, i) => ({
    id: `${source}#0`,
    source,
    score: 1 - i / 10,
    text: `Heading ${i}\nwrapped\nline\n\nsecond paragraph`,
  }));
  const messages = sourcesPrompt("Why?", hits);
  const system = messages[0]!;
  assert.equal(system.role, "system");
  for (const h of hits.slice(0, PROMPT_SOURCES)) assert.ok(system.content.includes(`(${h.source}) Heading`), system.content);
  assert.ok(!system.content.includes("c.md"));
  assert.ok(system.content.includes("wrapped line\nsecond paragraph"), system.content);
  assert.ok(!/\n\n.*\n\n/s.test(system.content.split("Sources:\n")[1]!), "no blank line inside the sources");
  assert.deepEqual(messages.at(-1), { role: "user", content: "Why?" });
  assert.ok(messages.every((m) => m.content !== ""));
});
