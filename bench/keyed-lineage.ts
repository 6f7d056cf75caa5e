/**
 * Micro-benchmark: what keyed outputs' input summaries (lineage) cost the keyed-state engine alone.
 * A tumbling and a sliding event-time count per key run over the same records with lineage off and
 * on, alternately, in this process on the in-memory backend (no Kafka, no Temporal); prints the CPU
 * of each run and the ratio of the medians. Not a case of `npm run bench`: the jobs' cost is theirs.
 *
 *   npx tsx bench/keyed-lineage.ts [--records 200000] [--keys 1000] [--repeat 3]
 */
import { pino } from "pino";
import type { RecordContext } from "../core/api/context.js";
import type { KeyedSpec, LogicalNode } from "../core/plan/logical.js";
import { encodeKey, keyGroupOf } from "../core/plan/key-groups.js";
import { InMemoryStateBackend } from "../activities/state/backend.js";
import { createKeyedOperator } from "../activities/state/create.js";
import { InputLineage } from "../activities/state/input-lineage.js";

function arg(name: string, fallback: string): number {
  const i = process.argv.indexOf(`--${name}`);
  return Number(i > 0 ? process.argv[i + 1]! : fallback);
}
const RECORDS = arg("records", "200000");
const KEYS = arg("keys", "1000");
const REPEAT = arg("repeat", "3");

const CONTEXT: RecordContext = {
  operatorId: "op",
  jobId: "bench",
  params: {},
  attempt: 1,
  logger: pino({ level: "silent" }),
  service: (name) => Promise.reject(new Error(`no service "${name}" here`)),
};
const OUT = { emit: (): void => undefined, side: (): void => undefined };
const COUNT = { createAccumulator: () => 0, add: (_e: unknown, a: number) => a + 1, getResult: (a: number) => a };

/** A keyed window node counting per key. */
function node(window: Extract<KeyedSpec, { op: "window" }>["window"]): LogicalNode {
  return {
    id: "op",
    name: "op",
    kind: "keyed",
    parallelism: null,
    inputs: [],
    form: "lambda",
    fnHash: "",
    retry: { maxAttempts: 1, initialIntervalMs: 0, backoffCoefficient: 1, maxIntervalMs: 0 },
    timeoutMs: 0,
    keyed: { op: "window", window, apply: "aggregate", allowedLatenessMs: 0, lateTag: null, withResultFn: false },
  };
}

/** CPU ms of one run: records 1 ms of event time apart over `KEYS` keys and 4 source partitions, a unit every 500. */
function run(n: LogicalNode, lineageOn: boolean): number {
  const keys = Array.from({ length: KEYS }, (_, i) => encodeKey(`s${i}`));
  const backend = new InMemoryStateBackend();
  const lineage = lineageOn ? new InputLineage(backend) : null;
  const op = createKeyedOperator(n, { main: COUNT }, backend, () => 0, lineage);
  const started = process.cpuUsage();
  for (let i = 0; i < RECORDS; i++) {
    const key = keys[i % keys.length]!;
    if (i % 100 === 0) void op.advanceWatermark(i - 1_000, CONTEXT, OUT);
    if (lineage) lineage.current = [`in:${i % 4}`, i];
    backend.beginRecord();
    void op.element({ key, keyGroup: keyGroupOf(key, 128), value: { i }, timestamp: i, side: 0 }, CONTEXT, OUT);
    backend.commitRecord();
    if (i % 500 === 499) backend.takeChanges();
  }
  const cpu = process.cpuUsage(started);
  return (cpu.user + cpu.system) / 1000;
}

const median = (xs: readonly number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const cases: Array<[string, LogicalNode]> = [
  ["tumbling 10 s count", node({ kind: "tumbling", sizeMs: 10_000, offsetMs: 0, time: "event" })],
  ["sliding 30 s / 10 s count", node({ kind: "sliding", sizeMs: 30_000, slideMs: 10_000, offsetMs: 0, time: "event" })],
];
for (const [name, n] of cases) {
  const off: number[] = [];
  const on: number[] = [];
  for (let r = 0; r < REPEAT; r++) {
    off.push(run(n, false));
    on.push(run(n, true));
  }
  const ms = (xs: readonly number[]): string => xs.map((x) => x.toFixed(0)).join("/");
  process.stdout.write(
    `${name}, ${RECORDS} records, ${KEYS} keys: CPU ms lineage off ${ms(off)}, on ${ms(on)}; median on/off ${(median(on) / median(off)).toFixed(2)}x\n`,
  );
}
