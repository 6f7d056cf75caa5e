/** The per-model rate limiter and token estimates, on a manual clock: buckets, per-model limits, 429 pauses, settling. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { Bucket, ModelRateLimiter } from "../../connectors/llm/rate-limiter.js";
import { INITIAL_CHARS_PER_TOKEN, localTokenizers, TokenEstimator } from "../../connectors/llm/token-estimate.js";
import { retryAfterOf } from "../../connectors/llm/model-endpoint.js";
import { MODELS_DIR } from "../../models/paths.js";
import { ManualClock } from "../support/manual-clock.js";

/** Starts an acquire, lets it reach its sleep, and returns what it asked to sleep. */
async function blockedAcquire(clock: ManualClock, limiter: ModelRateLimiter, model: string, tokens: number) {
  const before = clock.sleeps.length;
  const done = limiter.acquire(model, tokens);
  await clock.untilSleeping();
  return { done, slept: clock.sleeps.slice(before) };
}

test("a bucket refills continuously with its clock and goes into debt when charged more than it had", () => {
  const clock = new ManualClock();
  const b = new Bucket(600, clock);
  assert.equal(b.take(600), 0, "a full minute's budget at once");
  assert.equal(b.take(60), 6_000, "60 of 600 per minute refill in 6 s");
  void clock.advance(30_000);
  assert.equal(b.available(), 300, "half a minute refilled half");
  assert.equal(b.take(60), 0);
  b.adjust(-540);
  assert.equal(b.available(), -300, "charged 540 more than it held");
  assert.equal(b.take(1), 30_100, "the debt is paid back first");
  b.adjust(10_000);
  assert.equal(b.available(), 600, "never above a minute's worth");
});

test("each model has its own limits; a model not named uses the global ones; an unset limit falls back", async () => {
  const clock = new ManualClock();
  const limiter = new ModelRateLimiter(
    { requestsPerMinute: 0, tokensPerMinute: 1_000 },
    { small: { tokensPerMinute: 100 }, capped: { requestsPerMinute: 2 } },
    clock,
  );
  assert.deepEqual(limiter.limitsOf("small"), { requestsPerMinute: 0, tokensPerMinute: 100 });
  assert.deepEqual(limiter.limitsOf("capped"), { requestsPerMinute: 2, tokensPerMinute: 1_000 });
  assert.deepEqual(limiter.limitsOf("other"), { requestsPerMinute: 0, tokensPerMinute: 1_000 });

  assert.equal(await limiter.acquire("small", 100), 0);
  const small = await blockedAcquire(clock, limiter, "small", 50);
  assert.deepEqual(small.slept, [30_000], "50 tokens at 100 per minute: 30 s");
  assert.equal(await limiter.acquire("other", 1_000), 0, "another model is not held by small's bucket");
  await clock.advance(30_000);
  assert.equal(await small.done, 30_000);

  assert.equal(await limiter.acquire("capped", 1), 0);
  assert.equal(await limiter.acquire("capped", 1), 0);
  const third = await blockedAcquire(clock, limiter, "capped", 1);
  assert.deepEqual(third.slept, [30_000], "the third request at 2 per minute");
  await clock.advance(30_000);
  assert.equal(await third.done, 30_000);
  assert.deepEqual(limiter.waitsOf("small"), { calls: 1, ms: 30_000, pauses: 0 });
  assert.deepEqual(limiter.waitsOf("other"), { calls: 0, ms: 0, pauses: 0 });
});

test("a request slot is not held while the call waits for tokens", async () => {
  const clock = new ManualClock();
  const limiter = new ModelRateLimiter({ requestsPerMinute: 2, tokensPerMinute: 60 }, {}, clock);
  assert.equal(await limiter.acquire("m", 60), 0);
  const waiting = await blockedAcquire(clock, limiter, "m", 30);
  assert.deepEqual(waiting.slept, [30_000]);
  await clock.advance(30_000);
  assert.equal(await waiting.done, 30_000);
  // 2 per minute: 1 slot left after the first call, 1 refilled in 30 s, 1 taken now; had the waiting
  // call kept the slot it took before waiting, this one would wait.
  assert.equal(await limiter.acquire("m", 0), 0);
});

test("a 429 pause holds only its model, for exactly the Retry-After, and a longer pause is not shortened", async () => {
  const clock = new ManualClock();
  const limiter = new ModelRateLimiter({ requestsPerMinute: 0, tokensPerMinute: 0 }, {}, clock);
  limiter.pause("a", 1_500);
  limiter.pause("a", 500);
  assert.equal(limiter.pausedFor("a"), 1_500);
  assert.equal(limiter.pausedFor("b"), 0);
  assert.equal(await limiter.acquire("b", 10), 0, "model b is not paused");
  const a = await blockedAcquire(clock, limiter, "a", 10);
  assert.deepEqual(a.slept, [1_500]);
  await clock.advance(1_000);
  assert.equal(clock.pending(), 1, "still paused after 1 s");
  await clock.advance(500);
  assert.equal(await a.done, 1_500);
  assert.deepEqual(limiter.waitsOf("a"), { calls: 1, ms: 1_500, pauses: 2 });
});

test("settling refunds an over-estimate and charges an under-estimate to the model's bucket", async () => {
  const clock = new ManualClock();
  const limiter = new ModelRateLimiter({ requestsPerMinute: 0, tokensPerMinute: 1_000 }, {}, clock);
  await limiter.acquire("m", 400);
  limiter.settle("m", 400, 100);
  assert.equal(limiter.tokensAvailable("m"), 900);
  await limiter.acquire("m", 100);
  limiter.settle("m", 100, 1_300);
  assert.equal(limiter.tokensAvailable("m"), -400);
  const next = await blockedAcquire(clock, limiter, "m", 100);
  assert.deepEqual(next.slept, [30_000], "the 400 of debt plus the 100 wanted, at 1000 per minute");
  await clock.advance(30_000);
  await next.done;
});

test("token estimates: 4 characters per token at first, then the running ratio the endpoint reported, per model", () => {
  const e = new TokenEstimator();
  assert.equal(e.charsPerToken("m"), INITIAL_CHARS_PER_TOKEN);
  assert.equal(e.estimate("m", ["x".repeat(40), "y"]), 11);
  e.observe("m", 300, 100);
  e.observe("m", 100, 100);
  assert.equal(e.charsPerToken("m"), 2, "400 characters over 200 tokens");
  assert.equal(e.estimate("m", ["x".repeat(40)]), 20);
  assert.equal(e.charsPerToken("other"), INITIAL_CHARS_PER_TOKEN, "each model has its own ratio");
  e.observe("other", 0, 0);
  assert.equal(e.charsPerToken("other"), INITIAL_CHARS_PER_TOKEN, "an answer without usage changes nothing");
  const counted = new TokenEstimator(new Map([["t", (text: string) => text.split(" ").length]]));
  assert.equal(counted.estimate("t", ["a b c", "d"]), 4, "a known tokenizer wins over the ratio");
});

test(
  "the local embedding model's tokenizer counts its special tokens too",
  { skip: !existsSync(join(MODELS_DIR, "all-minilm-l6-v2-q", "tokenizer.json")) },
  () => {
    const count = localTokenizers().get("all-minilm-l6-v2")!;
    assert.equal(count("hello world"), 4, "[CLS] hello world [SEP]");
    assert.equal(localTokenizers("/nonexistent").size, 0);
  },
);

test("retryAfterOf prefers retry-after-ms, then Retry-After seconds", () => {
  const h = (o: Record<string, string>) => ({ get: (k: string) => o[k] ?? null });
  assert.equal(retryAfterOf(h({ "retry-after-ms": "250", "retry-after": "3" })), 250);
  assert.equal(retryAfterOf(h({ "retry-after": "3" })), 3_000);
  assert.equal(retryAfterOf(h({ "retry-after-ms": "soon", "retry-after": "1" })), 1_000);
  assert.equal(retryAfterOf(h({})), null);
  assert.equal(retryAfterOf(undefined), null);
});
