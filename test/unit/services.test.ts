/**
 * Services that functions share (`env.registerService`, `ctx.service`): one open per registry
 * however many first uses race, one close per service at shutdown (newest first), a failed open is
 * tried again; a job whose functions use a service across several splits opens it once; an unknown
 * name fails the job naming the service, the operator and the registered names; registering
 * services leaves the plan hash alone.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { pino } from "pino";
import { definePipeline } from "../../core/api/pipeline.js";
import { FileSink } from "../../core/api/connectors.js";
import type { FunctionContext, RecordContext } from "../../core/api/context.js";
import { MapFunction } from "../../core/api/functions.js";
import type { ServiceContext } from "../../core/api/services.js";
import { PipelineDefinitionError, UnknownServiceError } from "../../core/errors.js";
import { ServiceRegistry, serviceRegistryOf, type ServiceScope } from "../../activities/services.js";
import { loadConfig } from "../../client/config-loader.js";
import { MemoryHost, readJsonl } from "./stage/memory-host.js";

const logger = pino({ level: "silent" });
const config = loadConfig({ env: {} });
const scope: ServiceScope = { pipeline: "p", config, dataDir: "/tmp/x", worker: { identity: "test", pid: process.pid, thread: 0 } };

/** A service that counts its opens and closes in `journal`. */
function journalled(name: string, journal: string[]) {
  return async (ctx: ServiceContext) => {
    journal.push(`open ${name}`);
    await new Promise((r) => setTimeout(r, 5)); // a real asynchronous open: first uses overlap it
    return { name, ctx, close: () => void journal.push(`close ${name}`) };
  };
}

test("concurrent first uses share one open; close closes each service once, the last opened first", async () => {
  const journal: string[] = [];
  const services = new ServiceRegistry(
    new Map([
      ["a", journalled("a", journal)],
      ["b", journalled("b", journal)],
    ]),
    scope,
    logger,
  );
  const bs = await Promise.all(Array.from({ length: 8 }, () => services.get<{ name: string }>("b", "op")));
  assert.ok(bs.every((b) => b === bs[0]));
  const a = await services.get<{ name: string; ctx: ServiceContext }>("a", "op");
  assert.equal(await services.get("a", "other-op"), a);
  assert.deepEqual(journal, ["open b", "open a"]);
  assert.deepEqual([a.ctx.name, a.ctx.pipeline, a.ctx.dataDir, a.ctx.worker.identity], ["a", "p", "/tmp/x", "test"]);
  await services.close();
  await services.close();
  assert.deepEqual(journal, ["open b", "open a", "close a", "close b"]);
  await assert.rejects(services.get("a", "op"), /after the worker closed its services/);
});

test("a failed open is forgotten: the next use opens again", async () => {
  let opens = 0;
  const services = new ServiceRegistry(
    new Map([
      [
        "flaky",
        () => {
          if (++opens === 1) throw new Error("store not up yet");
          return { ok: true };
        },
      ],
    ]),
    scope,
    logger,
  );
  await assert.rejects(services.get("flaky", "op"), /store not up yet/);
  assert.deepEqual(await services.get("flaky", "op"), { ok: true });
  assert.equal(opens, 2);
});

/** A counter service: every call gives the next number of this instance. */
interface Counter {
  next(): number;
}

/** Takes the counter in `open` (through the function context), numbers records with it. */
class Numbered extends MapFunction<number, { n: number; seq: number }> {
  private counter: Counter | null = null;
  async open(ctx: FunctionContext): Promise<void> {
    this.counter = await ctx.service<Counter>("counter");
  }
  map(n: number): { n: number; seq: number } {
    return { n, seq: this.counter!.next() };
  }
}

function countingPipeline(journal: string[]) {
  return definePipeline("unit-services", (env) => {
    env.registerService<Counter>("counter", () => {
      journal.push("open counter");
      let seq = 0;
      return { next: () => ++seq, close: () => void journal.push("close counter") };
    });
    env
      .fromCollection(
        Array.from({ length: 40 }, (_, i) => i),
        { name: "numbers" },
      )
      .map(new Numbered(), { name: "numbered" })
      // A plain function reaches the same instance through the record context.
      .map(async (v, ctx: RecordContext) => ({ ...v, again: (await ctx.service<Counter>("counter")).next() }), { name: "again" })
      .sink(FileSink.jsonl(env.param("output")), { name: "out" });
  });
}

test("a job over several splits opens its service once in the process and closes it at shutdown", async () => {
  const journal: string[] = [];
  const pipeline = countingPipeline(journal);
  const host = new MemoryHost(pipeline, (dataDir, log) => serviceRegistryOf(pipeline, config, dataDir, "unit", log));
  let out: Array<{ n: number; seq: number; again: number }>;
  try {
    const job = await host.run("services", { output: host.path("out.jsonl") }, { parallelism: 4 });
    assert.ok(job.calls.length >= 4, `expected several split units, got ${job.calls.length}`);
    out = readJsonl(job.commit.outputs.out!);
    assert.deepEqual(journal, ["open counter"]);
  } finally {
    await host.close();
  }
  assert.deepEqual(journal, ["open counter", "close counter"]);
  // One instance numbered all 80 calls: every number from 1 to 80 once.
  assert.deepEqual(
    out.flatMap((r) => [r.seq, r.again]).sort((a, b) => a - b),
    Array.from({ length: 80 }, (_, i) => i + 1),
  );
});

test("an unknown service fails the job, naming the service, the operator and the registered names", async () => {
  const pipeline = definePipeline("unit-services-unknown", (env) => {
    env.registerService("counter", () => ({}));
    env
      .fromCollection([1, 2, 3], { name: "numbers" })
      .map(async (v: number, ctx) => ((await ctx.service("vectorz")) ? v : v), { name: "retriever" })
      .sink(FileSink.jsonl(env.param("output")), { name: "out" });
  });
  const host = new MemoryHost(pipeline, (dataDir, log) => serviceRegistryOf(pipeline, config, dataDir, "unit", log));
  try {
    await assert.rejects(host.run("unknown", { output: host.path("out.jsonl") }), (err: unknown) => {
      assert.ok(err instanceof UnknownServiceError, String(err));
      assert.deepEqual([err.service, err.operator, err.registered], ["vectorz", "retriever", ["counter", "llm"]]);
      assert.match(err.message, /operator "retriever" asked for service "vectorz".*registered: "counter", "llm"/);
      assert.equal(err.scope, "job");
      return true;
    });
  } finally {
    await host.close();
  }
});

test("registering services leaves the plan hash alone; llm is reserved and a name is registered once", () => {
  const build = (services: boolean) =>
    definePipeline("unit-services-hash", (env) => {
      if (services) env.registerService("store", () => ({}));
      env.fromCollection([1, 2], { name: "numbers" }).sink(FileSink.jsonl("/tmp/out.jsonl"), { name: "out" });
    }).compile();
  const [plain, withService] = [build(false), build(true)];
  assert.equal(withService.plan.hash, plain.plan.hash);
  assert.deepEqual([...plain.services.keys()], []);
  assert.deepEqual([...withService.services.keys()], ["store"]);
  const refused = (register: (env: Parameters<Parameters<typeof definePipeline>[1]>[0]) => void) =>
    assert.throws(
      () =>
        definePipeline("unit-services-bad", (env) => {
          register(env);
          env.fromCollection([1], { name: "numbers" }).print();
        }).compile(),
      PipelineDefinitionError,
    );
  refused((env) => env.registerService("llm", () => ({})));
  refused((env) => env.registerService("x", () => ({})).registerService("x", () => ({})));
  refused((env) => env.registerService("bad name", () => ({})));
});
