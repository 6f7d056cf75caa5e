/**
 * Unit tests of where a stage unit runs (`thread-placement.ts`), of the worker's slots from the
 * machine's cores (`worker/slots.ts`) and of an error rebuilt from a thread's failure.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { CancelledFailure } from "@temporalio/common";
import { definePipeline, type Pipeline } from "../../../core/api/pipeline.js";
import { FileSink, FileSource, KafkaSink, KafkaSource } from "../../../core/api/connectors.js";
import type { DataStream } from "../../../core/api/datastream.js";
import { onMainThread } from "../../../core/api/functions.js";
import "../../../core/api/keyed.js";
import { parseConfig } from "../../../core/config/schema.js";
import { SageError } from "../../../core/errors.js";
import type { JobRuntimeOptions, StageInput } from "../../../core/plan/job.js";
import { streamPlacement, threadPlacement } from "../../../activities/stage/thread-placement.js";
import { errorOf } from "../../../activities/stage/stage-threads.js";
import { workerSlotsOf } from "../../../worker/slots.js";

const RUNTIME: JobRuntimeOptions = {
  activityTimeoutMs: 60_000,
  heartbeatTimeoutMs: 10_000,
  maxBatchBytes: 512 * 1024,
  splitBytes: 64 * 1024,
  splitPrefetch: 1,
  localActivities: false,
  eventsPerRun: 2000,
  historyBytesPerRun: 2 * 1024 * 1024,
  deadLetterPath: null,
};

/** Where the unit of the stage holding operator `operator` runs (`extra`: more of its input). */
function placementOf(pipeline: Pipeline, operator: string, extra: Partial<StageInput> = {}) {
  const compiled = pipeline.compile({ parallelism: 2, fusion: true });
  const stage = compiled.plan.stages.find((s) => s.operators.includes(operator))!;
  const input: StageInput = {
    pipeline: pipeline.name,
    jobId: "j",
    planHash: compiled.plan.hash,
    parallelism: 2,
    fusion: true,
    params: {},
    runtime: RUNTIME,
    stage: stage.id,
    shard: `${stage.id}-000000`,
    ...(stage.source ? { split: { index: 0, descriptor: { path: "/in", start: 0, end: 10 } } } : { edge: "e", batchRef: { path: "b", records: 1, bytes: 1 } }),
    ...extra,
  } as StageInput;
  return threadPlacement(input, compiled, stage);
}

const chain = (mark: (f: (v: string) => string) => (v: string) => string = (f) => f) =>
  definePipeline("threads", (env) =>
    env
      .fromSource(FileSource.lines(env.param("input")), { name: "lines" })
      .map(
        mark((v) => v.toUpperCase()),
        { name: "upper" },
      )
      .sink(FileSink.jsonl(env.param("output")), { name: "out" }),
  );

test("a bounded file split through stateless operators into a file sink runs on a thread", () => {
  assert.deepEqual(placementOf(chain(), "upper"), { thread: true });
});

test("a function marked onMainThread keeps its stage on the main thread, and the plan hash does not change", () => {
  const placed = placementOf(chain(onMainThread), "upper");
  assert.equal(placed.thread, false);
  assert.match((placed as { why: string }).why, /"upper" is marked to run on the main thread/);
  const hash = (p: Pipeline) => p.compile({ parallelism: 2, fusion: true }).plan.hash;
  assert.equal(hash(chain(onMainThread)), hash(chain()));
});

test("streaming units, re-drives, print and user sinks, LLM operators and keyed stages stay on the main thread", () => {
  const why = (p: ReturnType<typeof placementOf>) => (p.thread ? "thread" : p.why);
  assert.match(why(placementOf(chain(), "upper", { stream: {} as never })), /source "lines" is not a Kafka source/);
  assert.match(why(placementOf(chain(), "upper", { runtime: { ...RUNTIME, redrive: {} as never } })), /re-drive/);
  const printed = definePipeline("printed", (env) => env.fromSource(FileSource.lines(env.param("input")), { name: "lines" }).print({ name: "shown" }));
  assert.match(why(placementOf(printed, "shown")), /sink "shown"/);
  const userSink = definePipeline("user-sink", (env) =>
    env.fromSource(FileSource.lines(env.param("input")), { name: "lines" }).sink((v: string) => void v, { name: "mine" }),
  );
  assert.match(why(placementOf(userSink, "mine")), /sink "mine"/);
  const llm = definePipeline("llm", (env) =>
    env
      .fromSource(FileSource.lines(env.param("input")), { name: "lines" })
      .embed({ text: (v: string) => v, name: "vectors" })
      .sink(FileSink.jsonl(env.param("output")), { name: "out" }),
  );
  assert.match(why(placementOf(llm, "vectors")), /"vectors" is marked to run on the main thread/);
  const keyed = definePipeline("keyed", (env) =>
    env
      .fromSource(FileSource.lines(env.param("input")), { name: "lines" })
      .keyBy((v: string) => v, { name: "by-line" })
      .reduce((a: string, b: string) => a + b, { name: "joined" })
      .sink(FileSink.jsonl(env.param("output")), { name: "out" }),
  );
  assert.equal(placementOf(keyed, "by-line").thread, true, "the keyBy side only writes keyed edge files");
  assert.match(why(placementOf(keyed, "joined", { keyed: {} as never })), /keyed/);
});

test("a streaming source stage of stateless operators into Kafka runs its chain on a thread; keyed and print stay", () => {
  const why = (p: ReturnType<typeof placementOf>) => (p.thread ? "thread" : p.why);
  const stream = { stream: {} as never };
  const kafka = (shape: (s: DataStream<string>) => void) =>
    definePipeline("streamed", (env) => shape(env.fromSource(KafkaSource.topic<string>("in", { groupId: "g" }), { name: "in" })));
  const stateless = kafka((s) => s.map((v) => v.toUpperCase(), { name: "upper" }).sink(KafkaSink.topic<string>("out"), { name: "out" }));
  assert.equal(why(placementOf(stateless, "upper", stream)), "thread");
  const printed = kafka((s) => s.map((v) => v.toUpperCase(), { name: "upper" }).print({ name: "shown" }));
  assert.match(why(placementOf(printed, "upper", stream)), /sink "shown" writes outside the unit's transaction/);
  const marked = kafka((s) =>
    s
      .map(
        onMainThread((v: string) => v.toUpperCase()),
        { name: "upper" },
      )
      .sink(KafkaSink.topic<string>("out"), { name: "out" }),
  );
  assert.match(why(placementOf(marked, "upper", stream)), /"upper" is marked to run on the main thread/);
  const counted = (sourcePartitioned: boolean) =>
    kafka((s) =>
      s
        .keyBy((v) => v, { name: "by-line", sourcePartitioned })
        .reduce((a: string, b: string) => a + b, { name: "joined" })
        .sink(KafkaSink.topic<string>("out"), { name: "out" }),
    );
  assert.equal(why(placementOf(counted(false), "in", stream)), "thread", "the keyBy side only writes the repartition topic");
  assert.match(why(placementOf(counted(false), "joined", stream)), /keyed stage keeps state/);
  assert.match(why(placementOf(counted(true), "joined", stream)), /"joined" keeps keyed state/, "a source-partitioned keyBy keeps state in the source stage");
  const compiled = stateless.compile({ parallelism: 2, fusion: true });
  assert.deepEqual(
    compiled.plan.stages.map((s) => streamPlacement(compiled, s).thread),
    [true],
  );
});

test("slots and threads follow the cores unless configured; 1 thread is off", () => {
  const config = (worker: Record<string, unknown>) => parseConfig({ worker });
  assert.deepEqual(workerSlotsOf(config({}), 4), { activities: 4, threads: 4 });
  assert.deepEqual(workerSlotsOf(config({}), 1), { activities: 1, threads: 0 });
  assert.deepEqual(workerSlotsOf(config({ threads: 1, "max-concurrent-activities": 3 }), 8), { activities: 3, threads: 0 });
  assert.deepEqual(workerSlotsOf(config({ threads: "0" }), 8), { activities: 8, threads: 0 });
  assert.throws(() => config({ threads: -1 }), /worker\.threads/);
});

test("a thread's failure comes back as the error the main thread would have thrown", () => {
  const sage = errorOf({
    name: "PlanMismatchError",
    message: "m",
    stack: "at thread",
    sage: { code: "PLAN_MISMATCH", retriable: false, scope: "job", input: false },
  });
  assert.ok(sage instanceof SageError);
  assert.deepEqual([sage.name, sage.code, sage.retriable, sage.scope, sage.stack], ["PlanMismatchError", "PLAN_MISMATCH", false, "job", "at thread"]);
  const foreign = errorOf({ name: "TypeError", message: "x is undefined" });
  assert.ok(!(foreign instanceof SageError));
  assert.equal(foreign.name, "TypeError");
  assert.ok(errorOf({ name: "CancelledFailure", message: "c", cancelled: true }) instanceof CancelledFailure);
});
