/** The end-of-run summary `sage run` prints. */
import type { JobResult } from "../core/plan/job.js";
import type { PhysicalPlan } from "../core/plan/physical.js";

/** Human summary: counts per operator, dead letters, wall time, workflow id and Web UI link. */
export function renderSummary(result: JobResult, plan: PhysicalPlan | null, workflowId: string, wallMs: number, link: string | null): string {
  const names = new Map((plan?.nodes ?? []).map((n) => [n.id, n.name] as const));
  const rows = Object.entries(result.counts).map(([id, c]) => [names.get(id) ?? id, String(c.in), String(c.out), String(c.dead)]);
  const header = ["operator", "in", "out", "dead"];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const fmt = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ");
  const read = Object.values(result.counts)[0]?.in ?? 0;
  const lines = [
    `job ${result.jobId} of pipeline ${result.pipeline}: ${result.phase}`,
    "",
    fmt(header),
    ...rows.map(fmt),
    "",
    `splits:        ${result.splitsDone}/${result.splitsTotal} (${result.activities} activities)`,
    `dead letters:  ${result.deadLetters}${result.deadLetterPath ? ` -> ${result.deadLetterPath}` : ""}`,
    ...Object.entries(result.outputs).map(([id, path]) => `output ${names.get(id) ?? id}: ${path}`),
    `wall time:     ${(wallMs / 1000).toFixed(2)} s (${Math.round(read / Math.max(0.001, wallMs / 1000))} records/s read)`,
    `workflow id:   ${workflowId}`,
    `plan hash:     ${result.planHash}`,
  ];
  if (link) lines.push(`Web UI:        ${link}`);
  return lines.join("\n");
}
