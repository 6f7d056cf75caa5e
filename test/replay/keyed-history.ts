/**
 * Reads the keyed pieces out of a recorded run of a partition workflow: which topics its batch
 * signals came from, which stages ran (local activity markers) and what they returned, and where a
 * durable workflow timer fired a processing-time timer unit. `scripts/record-histories.ts` picks the
 * run to commit with it, and `keyed-replay.test.ts` checks the committed file with it.
 */
import type { temporal } from "@temporalio/proto";
import { stageActivityType, type StageOutput } from "../../core/plan/job.js";
import { entryTopicsOf, type BatchDescription, type StreamJobInput } from "../../core/plan/stream.js";

type Payload = temporal.api.common.v1.IPayload;

/** A stage run recorded in the history: its activity type and what it returned. */
export interface StageRun {
  type: string;
  output: StageOutput;
}

/** The keyed pieces of one run. */
export interface KeyedRun {
  input: StreamJobInput;
  /** Activity types of the plan's keyed stages. */
  keyedTypes: string[];
  /** The stage each batch signal entered by (`?` for a topic no stage reads), in order. */
  batchStages: string[];
  /** The topic of each batch signal, in order. */
  batchTopics: string[];
  stageRuns: StageRun[];
  /** Stage runs that came right after a durable workflow timer fired: processing-time timer units. */
  timerUnits: StageRun[];
  timersStarted: number;
  /** The run started from a checkpoint (another run's continue-as-new). */
  resumed: boolean;
  continuedAsNew: boolean;
}

/** The JSON value of a `json/plain` payload. */
function json<T>(p: Payload | undefined): T {
  return JSON.parse(Buffer.from(p?.data ?? new Uint8Array()).toString("utf8")) as T;
}

/** The stage run a local activity marker records, or null for another marker. */
function stageRunOf(e: temporal.api.history.v1.IHistoryEvent): StageRun | null {
  const m = e.markerRecordedEventAttributes;
  if (m?.markerName !== "core_local_activity") return null;
  const data = json<{ activity_type: string }>(m.details?.["data"]?.payloads?.[0]);
  return { type: data.activity_type, output: json<StageOutput>(m.details?.["result"]?.payloads?.[0]) };
}

/** Reads the keyed pieces of a partition workflow run's history. */
export function readKeyedRun(history: temporal.api.history.v1.IHistory): KeyedRun {
  const events = history.events ?? [];
  const started = events[0]?.workflowExecutionStartedEventAttributes;
  const input = json<StreamJobInput>(started?.input?.payloads?.[0]);
  const entry = entryTopicsOf(input.plan, input.jobId);
  const names = new Map(input.plan.stages.map((s) => [s.id, stageActivityType(s.name)] as const));
  const run: KeyedRun = {
    input,
    keyedTypes: input.plan.stages.filter((s) => s.keyed).map((s) => stageActivityType(s.name)),
    batchStages: [],
    batchTopics: [],
    stageRuns: [],
    timerUnits: [],
    timersStarted: 0,
    resumed: Boolean(started?.continuedExecutionRunId),
    continuedAsNew: events.at(-1)?.workflowExecutionContinuedAsNewEventAttributes != null,
  };
  let timerFired = false;
  for (const e of events) {
    const signal = e.workflowExecutionSignaledEventAttributes;
    if (signal?.signalName === "sage:batch") {
      for (const b of json<BatchDescription[]>(signal.input?.payloads?.[0])) {
        run.batchTopics.push(b.topic);
        run.batchStages.push(names.get(entry.get(b.topic) ?? "") ?? "?");
      }
    }
    if (e.timerStartedEventAttributes) run.timersStarted++;
    if (e.timerFiredEventAttributes) timerFired = true;
    const stageRun = stageRunOf(e);
    if (!stageRun) continue;
    run.stageRuns.push(stageRun);
    if (timerFired) run.timerUnits.push(stageRun);
    timerFired = false;
  }
  return run;
}

/** What a committed keyed history must hold; empty when it holds all of it. */
export function missingKeyedPieces(run: KeyedRun): string[] {
  const source = run.input.plan.stages.find((s) => s.source);
  const missing: string[] = [];
  if (run.keyedTypes.length < 2) missing.push(`two keyed stages (the plan has ${run.keyedTypes.join(", ") || "none"})`);
  if (!source || !run.batchStages.includes(stageActivityType(source.name))) missing.push("a batch from the source topic");
  for (const t of run.keyedTypes) {
    if (!run.batchStages.includes(t)) missing.push(`a batch from the repartition topic of ${t}`);
    if (!run.stageRuns.some((r) => r.type === t && Object.keys(r.output.eventTime ?? {}).length > 0))
      missing.push(`a run of ${t} that returned its event time`);
  }
  if (!run.timerUnits.some((u) => run.keyedTypes.includes(u.type))) missing.push("a keyed stage's timer unit after a durable timer fired");
  if (!run.resumed) missing.push("a start from a checkpoint");
  if (!run.continuedAsNew) missing.push("a continue-as-new");
  return missing;
}
