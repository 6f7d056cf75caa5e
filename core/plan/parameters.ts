/** The job parameters a plan needs: its `env.param` placeholders, checked before a job is submitted. */
import { MissingParameterError } from "../errors.js";
import type { PhysicalPlan } from "./physical.js";

/** A parameter the plan refers to without a default, and who needs it. */
export interface MissingParameter {
  name: string;
  /** What reads it, in the worker's words: `source "lines"`, `sink "out"`, `dead-letter sink`. */
  neededBy: string[];
}

/** Names of the `{ $param }` placeholders without a default anywhere under `value`. */
function placeholders(value: unknown, found: Set<string> = new Set()): Set<string> {
  if (Array.isArray(value)) for (const v of value) placeholders(v, found);
  else if (value !== null && typeof value === "object") {
    const ref = value as { $param?: unknown; default?: unknown };
    if (typeof ref.$param === "string" && ref.default === undefined) found.add(ref.$param);
    else for (const v of Object.values(value)) placeholders(v, found);
  }
  return found;
}

/** The parameters `plan` needs that `params` does not give, in plan order, each with the operators that need it. */
export function missingParameters(plan: PhysicalPlan, params: Readonly<Record<string, string>>): MissingParameter[] {
  const users: Array<[string, unknown]> = plan.nodes.map((n) => [
    n.kind === "source" || n.kind === "sink" ? `${n.kind} "${n.name}"` : `operator "${n.name}"`,
    n,
  ]);
  users.push(["dead-letter sink", plan.deadLetter]);
  const missing = new Map<string, string[]>();
  for (const [who, part] of users) {
    for (const name of placeholders(part)) {
      if (params[name] === undefined) missing.set(name, [...(missing.get(name) ?? []), who]);
    }
  }
  return [...missing].map(([name, neededBy]) => ({ name, neededBy }));
}

/**
 * Throws `MissingParameterError` naming every parameter `plan` needs and `params` lacks, with who
 * needs it: the job would otherwise start and fail at its first activity.
 */
export function checkParameters(plan: PhysicalPlan, params: Readonly<Record<string, string>>): void {
  const missing = missingParameters(plan, params);
  if (missing.length === 0) return;
  const lines = missing.map((m) => `"${m.name}" (needed by ${m.neededBy.join(", ")})`);
  const flags = missing.map((m) => `--param ${m.name}=...`).join(" ");
  throw new MissingParameterError(
    missing[0]!.name,
    `pipeline "${plan.pipeline}" needs job parameter${missing.length > 1 ? "s" : ""} ${lines.join(", ")}, which ${missing.length > 1 ? "were" : "was"} not given (pass ${flags})`,
  );
}
