/** `sage alerts export` and `sage dashboard export`: the Prometheus rules and the Grafana dashboard, with the config's thresholds. */
import { writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { alertRulesYaml } from "../monitoring/alert-rules.js";
import { dashboardJson } from "../monitoring/dashboard.js";
import { configFrom, type GlobalFlags } from "./common.js";

/** Flags of the export commands. */
export interface ExportFlags extends GlobalFlags {
  out?: string;
}

/** Writes `text` to `--out` (saying where on stderr), or to stdout. */
function emit(text: string, flags: ExportFlags, what: string): void {
  if (!flags.out) {
    process.stdout.write(text);
    return;
  }
  const path = resolve(flags.out);
  writeFileSync(path, text);
  process.stderr.write(`${what} written to ${path}\n`);
}

/** `sage alerts export [--out F]`: a Prometheus rules file (thresholds from monitoring.alerts.*). */
export function alertsExportCommand(flags: ExportFlags): void {
  const config = configFrom(flags);
  emit(alertRulesYaml(config.monitoring.alerts), flags, "alert rules");
}

/** `sage dashboard export [--out F]`: a Grafana dashboard over the same metrics. */
export function dashboardExportCommand(flags: ExportFlags): void {
  const config = configFrom(flags);
  emit(dashboardJson(config.monitoring.alerts), flags, "Grafana dashboard");
}
