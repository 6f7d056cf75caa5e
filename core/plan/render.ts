/** Renders a physical plan for people: text, Mermaid and Graphviz DOT. */
import type { WindowSpec } from "../api/windows.js";
import type { LogicalNode } from "./logical.js";
import { shortHash, type PhysicalPlan } from "./physical.js";

function label(n: LogicalNode): string {
  const detail = n.source
    ? `source:${n.source.kind}`
    : n.sink
      ? `sink:${n.sink.kind}`
      : n.route
        ? `route: ${n.route.labels.join(" | ")}${n.route.otherwise ? " | otherwise" : ""}`
        : n.feedback
          ? `feedback, at most ${n.feedback.maxRounds} rounds`
          : n.keyed
            ? `${keyedLabel(n)}, holds state (uid ${n.id})`
            : n.watermark
              ? `timestamps, watermark bound ${n.watermark.outOfOrdernessMs} ms`
              : n.kind;
  return `${n.name} (${detail}${n.parallelism ? `, p=${n.parallelism}` : ""})`;
}

function windowLabel(w: WindowSpec): string {
  switch (w.kind) {
    case "tumbling":
      return `tumbling ${w.sizeMs} ms, ${w.time} time`;
    case "sliding":
      return `sliding ${w.sizeMs} ms every ${w.slideMs} ms, ${w.time} time`;
    case "session":
      return `session gap ${w.gapMs} ms, ${w.time} time`;
    case "count":
      return `count ${w.size}${w.slide !== w.size ? ` every ${w.slide}` : ""}`;
  }
}

function keyedLabel(n: LogicalNode): string {
  const k = n.keyed!;
  if (k.op === "window") return `window ${windowLabel(k.window)} -> ${k.apply}${k.allowedLatenessMs > 0 ? `, lateness ${k.allowedLatenessMs} ms` : ""}`;
  if (k.op === "windowJoin") return `window join, ${windowLabel(k.window)}`;
  if (k.op === "intervalJoin") return `interval join [${k.lowerMs}, ${k.upperMs}] ms`;
  return `keyed ${k.op}`;
}

function edgesOf(plan: PhysicalPlan): Array<{ from: string; to: string; tag: string | null; feedback: boolean }> {
  return plan.nodes.flatMap((n) => n.inputs.map((i) => ({ from: i.from, to: n.id, tag: i.tag, feedback: i.feedback === true })));
}

function edgeLabel(e: { tag: string | null; feedback: boolean }): string | null {
  const tag = e.tag === "__otherwise" ? "otherwise" : e.tag;
  return [tag, e.feedback ? "feedback" : null].filter(Boolean).join(", ") || null;
}

/** Logical graph, stages (what fused and why chains were cut) and the plan hash, as text. */
export function renderText(plan: PhysicalPlan): string {
  const byId = new Map(plan.nodes.map((n) => [n.id, n] as const));
  const lines = [
    `pipeline ${plan.pipeline}   plan ${plan.hash}`,
    `job parallelism ${plan.parallelism}, fusion ${plan.fusion ? "on" : "off"}`,
    "",
    "logical graph:",
  ];
  for (const n of plan.nodes) {
    const from = n.inputs.map((i) => `${byId.get(i.from)?.name ?? i.from}${i.tag ? `[${i.tag}]` : ""}`).join(", ");
    lines.push(`  ${from ? `${from} -> ` : ""}${label(n)}`);
  }
  lines.push("", `physical plan: ${plan.stages.length} stage(s)`);
  for (const s of plan.stages) {
    const unit = s.source
      ? "one activity per source split"
      : s.keyed
        ? "stateful: one activity per key-group range once its input is in (bounded), per repartition partition (streaming)"
        : "one activity per batch";
    lines.push(`  ${s.id} stage:${s.name}  [${s.operators.length} operator(s), parallelism ${s.parallelism}, ${unit}]`);
    if (s.keyedLocal) {
      const held = s.keyedLocal.map((id) => `"${byId.get(id)?.name ?? id}"`).join(", ");
      lines.push(`     no repartition: the keyBy is source-partitioned; ${held} hold state per partition workflow, over its source partitions`);
    }
  }
  const crossing = plan.edges.length;
  lines.push(
    "",
    crossing === 0
      ? "records never cross workflow history (only split descriptors and counts do)"
      : `${crossing} edge(s) carry records through workflow history:`,
  );
  for (const e of plan.edges) {
    const how = e.feedback
      ? " (feedback)"
      : e.keyed
        ? ` (repartition by key: ${plan.keyGroups ?? 0} key groups; edge files by key-group range, or a Kafka repartition topic)`
        : "";
    lines.push(`  ${e.fromStage} -> ${e.toStage}${e.tag ? ` [${e.tag === "__otherwise" ? "otherwise" : e.tag}]` : ""}${how}`);
  }
  if (plan.cuts.length > 0) {
    lines.push("", "chains cut:");
    for (const c of plan.cuts) lines.push(`  ${c.from} -/-> ${c.to}: ${c.reason}`);
  }
  return lines.join("\n");
}

/** Mermaid flowchart: one subgraph per stage. */
export function renderMermaid(plan: PhysicalPlan): string {
  const lines = ["flowchart LR"];
  const safe = (id: string) => id.replace(/[^A-Za-z0-9_]/g, "_");
  for (const s of plan.stages) {
    lines.push(`  subgraph ${s.id}["stage ${s.id}: ${s.name} (p=${s.parallelism})"]`);
    for (const id of s.operators) {
      const n = plan.nodes.find((x) => x.id === id)!;
      lines.push(`    ${safe(id)}["${label(n).replace(/"/g, "'")}"]`);
    }
    lines.push("  end");
  }
  for (const e of edgesOf(plan)) {
    const crosses = plan.edges.some((x) => x.fromOperator === e.from && x.toOperator === e.to);
    const text = edgeLabel(e);
    lines.push(`  ${safe(e.from)} ${crosses ? "-.->" : "-->"}${text ? `|${text}|` : ""} ${safe(e.to)}`);
  }
  lines.push(`  %% plan ${shortHash(plan.hash)}`);
  return lines.join("\n");
}

/** Graphviz DOT: one cluster per stage; dashed edges cross workflow history. */
export function renderDot(plan: PhysicalPlan): string {
  const q = (s: string) => JSON.stringify(s);
  const lines = [`digraph ${q(plan.pipeline)} {`, "  rankdir=LR;", "  node [shape=box];", `  label=${q(`plan ${shortHash(plan.hash)}`)};`];
  for (const s of plan.stages) {
    lines.push(`  subgraph ${q(`cluster_${s.id}`)} {`, `    label=${q(`${s.id}: ${s.name} (p=${s.parallelism})`)};`);
    for (const id of s.operators) lines.push(`    ${q(id)} [label=${q(label(plan.nodes.find((x) => x.id === id)!))}];`);
    lines.push("  }");
  }
  for (const e of edgesOf(plan)) {
    const crosses = plan.edges.some((x) => x.fromOperator === e.from && x.toOperator === e.to);
    const text = edgeLabel(e);
    const attrs = [crosses ? "style=dashed" : "", text ? `label=${q(text)}` : "", e.feedback ? "constraint=false" : ""].filter(Boolean).join(", ");
    lines.push(`  ${q(e.from)} -> ${q(e.to)}${attrs ? ` [${attrs}]` : ""};`);
  }
  lines.push("}");
  return lines.join("\n");
}
