/** Activities of the naive design: one per operator, called once per record. */
import { appendFile } from "node:fs/promises";
import { enrich, keep, label, type ClickEvent, type EnrichedEvent, type LabelledEvent } from "../bounded/events.js";

/** The activity map the naive worker registers. */
export const naiveActivities = {
  async enrich(e: ClickEvent): Promise<EnrichedEvent> {
    return enrich(e);
  },
  async label(e: EnrichedEvent): Promise<LabelledEvent> {
    return label(e);
  },
  async keep(e: LabelledEvent): Promise<boolean> {
    return keep(e);
  },
  async write(e: LabelledEvent, path: string): Promise<void> {
    await appendFile(path, JSON.stringify(e) + "\n");
  },
};
