/** Word count after the SAGE Core quick start: lines -> words -> (word, 1) pairs, short words dropped. */
import { definePipeline, FileSource, FileSink } from "sage-temporal";

export default definePipeline("wordcount", (env) =>
  env
    .fromSource(FileSource.lines(env.param("input")), { name: "lines" })
    .flatMap((line: string) => line.toLowerCase().split(/\W+/).filter(Boolean), { name: "split" })
    .map((w) => ({ word: w, n: 1 }), { name: "pair" })
    .filter((p) => p.word.length > 2, { name: "no-short" })
    .sink(FileSink.jsonl(env.param("output")), { name: "out" }),
);
