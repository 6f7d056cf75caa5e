/** The bounded job of the disk-full fault: JSON Lines in, one map, the exactly-once JSON Lines file sink out. */
import { definePipeline, FileSink, FileSource } from "sage-temporal";

/** An input record. */
export interface ChaosRecord {
  id: number;
  key: string;
  amount: number;
  payload: string;
}

/** The job's one operator (the runner applies it too, to know each output line's length in advance). */
export function checked(r: ChaosRecord): ChaosRecord & { checked: true } {
  return { ...r, checked: true };
}

export default definePipeline("chaos-file", (env) =>
  env
    .fromSource(FileSource.jsonl<ChaosRecord>(env.param("input")), { name: "records" })
    .map(checked, { name: "check" })
    .sink(FileSink.jsonl(env.param("output")), { name: "out" }),
);
