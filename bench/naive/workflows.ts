/**
 * The naive way to put a pipeline on Temporal, as a baseline: one workflow per record and one
 * activity per operator (map, map, filter, sink). Durable too, but every record pays a workflow
 * start, four activities and their workflow tasks.
 */
import { proxyActivities } from "@temporalio/workflow";
import type { ClickEvent } from "../bounded/events.js";
import type { naiveActivities } from "./activities.js";

const act = proxyActivities<typeof naiveActivities>({ startToCloseTimeout: "1 minute" });

/** Runs one record through the three operators and the sink. Returns whether it was written. */
export async function naiveRecordWorkflow(e: ClickEvent, output: string): Promise<boolean> {
  const labelled = await act.label(await act.enrich(e));
  if (!(await act.keep(labelled))) return false;
  await act.write(labelled, output);
  return true;
}
