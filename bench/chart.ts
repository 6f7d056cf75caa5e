/**
 * A horizontal bar chart as a self-contained SVG (no dependencies): one bar per row of a case,
 * durable rows and baselines in two colours, the value printed at each bar. When the values span
 * more than two orders of magnitude (naive Temporal next to a plain loop) the axis is logarithmic.
 */
import type { ChartBar } from "./case.js";

const WIDTH = 900;
const LABEL_W = 400;
const BAR_H = 22;
const GAP = 10;
const TOP = 58;
const DURABLE = "#2f6fbd";
const BASELINE = "#9a9a9a";

function escape(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

function format(v: number): string {
  return v >= 100 ? Math.round(v).toLocaleString("en-US") : v >= 10 ? v.toFixed(1) : v.toFixed(2);
}

/** The SVG text of a bar chart titled `title` whose bars measure `unit`. */
export function barChart(title: string, subtitle: string, unit: string, bars: ChartBar[]): string {
  const values = bars.map((b) => b.value).filter((v): v is number => v !== null && v > 0);
  const max = Math.max(1, ...values);
  const min = Math.min(max, ...values);
  const log = max / min > 100;
  const plotW = WIDTH - LABEL_W - 110;
  const scale = (v: number): number => {
    if (log) {
      const lo = Math.floor(Math.log10(min));
      return Math.max(2, ((Math.log10(v) - lo) / (Math.log10(max) - lo)) * plotW);
    }
    return Math.max(2, (v / max) * plotW);
  };
  const base = TOP + bars.length * (BAR_H + GAP);
  const height = base + 50;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="sans-serif" font-size="13">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="12" y="22" font-size="16" font-weight="bold">${escape(title)}</text>`,
    `<text x="12" y="42" fill="#555">${escape(subtitle)}</text>`,
  ];
  bars.forEach((bar, i) => {
    const y = TOP + i * (BAR_H + GAP);
    out.push(`<text x="${LABEL_W - 8}" y="${y + BAR_H * 0.7}" text-anchor="end">${escape(bar.label)}</text>`);
    if (bar.value === null || bar.value <= 0) {
      out.push(`<text x="${LABEL_W + 4}" y="${y + BAR_H * 0.7}" fill="#b00">not measured (see the table)</text>`);
      return;
    }
    const w = scale(bar.value);
    out.push(`<rect x="${LABEL_W}" y="${y}" width="${w.toFixed(1)}" height="${BAR_H}" fill="${bar.durable ? DURABLE : BASELINE}"/>`);
    out.push(`<text x="${(LABEL_W + w + 6).toFixed(1)}" y="${y + BAR_H * 0.7}">${format(bar.value)}</text>`);
  });
  const legendY = base + 14;
  out.push(`<rect x="${LABEL_W}" y="${legendY - 10}" width="12" height="12" fill="${DURABLE}"/>`);
  out.push(`<text x="${LABEL_W + 18}" y="${legendY}">durable (Temporal)</text>`);
  out.push(`<rect x="${LABEL_W + 160}" y="${legendY - 10}" width="12" height="12" fill="${BASELINE}"/>`);
  out.push(`<text x="${LABEL_W + 178}" y="${legendY}">baseline (not durable)</text>`);
  out.push(`<text x="${LABEL_W}" y="${legendY + 22}" fill="#555">${escape(unit)}${log ? ", log scale" : ""}</text>`);
  out.push("</svg>");
  return out.join("\n") + "\n";
}
