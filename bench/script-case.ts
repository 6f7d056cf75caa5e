/**
 * A case that is a standalone benchmark script (`bench/kafka.ts`, `bench/soak.ts`): run as its own
 * process, with its own dev server and broker; its tables print as it goes and it saves its own
 * `bench/results/<date>-<name>.json`. The case checks that it ran to the end (the scripts wait
 * until every record arrived). When a script's parts move into the registry as cases, its entry goes.
 */
import { spawn } from "node:child_process";
import { once } from "node:events";
import type { BenchCase, BenchContext, CaseReport } from "./case.js";

/** How to run one script. */
export interface ScriptCaseOptions {
  name: string;
  file: string;
  summary: string;
  /** Extra arguments in a smoke run (none: the script is not part of the smoke run). */
  smokeArgs?: string[];
  inDefaultRun: boolean;
}

/** A registry entry that runs `options.file` with tsx. */
export function scriptCase(options: ScriptCaseOptions): BenchCase {
  const run = async (ctx: BenchContext): Promise<CaseReport> => {
    const extra = ctx.size === "smoke" ? (options.smokeArgs ?? []) : [];
    const args = ["--import", "tsx", options.file, ...extra];
    ctx.log(`${options.name}: node ${args.join(" ")}`);
    const child = spawn(process.execPath, args, { stdio: ["ignore", "inherit", "inherit"] });
    const [code, signal] = (await once(child, "exit")) as [number | null, NodeJS.Signals | null];
    return {
      title: `${options.name}: ${[options.file, ...extra].join(" ")} (tables above)`,
      columns: [],
      rows: [],
      checks: [{ what: `${options.file} ran to the end, every record arrived (exit ${code ?? signal})`, ok: code === 0 }],
      notes: [],
    };
  };
  return { name: options.name, summary: options.summary, inDefaultRun: options.inDefaultRun, inSmoke: options.smokeArgs !== undefined, run };
}
