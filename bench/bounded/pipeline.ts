/** The bounded benchmark's pipeline: JSON Lines events -> map -> map -> filter -> JSON Lines file (durable, exactly once). */
import { definePipeline, FileSink, FileSource } from "sage-temporal";
import { enrich, keep, label, type ClickEvent } from "./events.js";

export default definePipeline("bench-bounded", (env) =>
  env
    .fromSource(FileSource.jsonl<ClickEvent>(env.param("input")), { name: "events" })
    .map(enrich, { name: "enrich" })
    .map(label, { name: "label" })
    .filter(keep, { name: "keep" })
    .sink(FileSink.jsonl(env.param("output")), { name: "out" }),
);
