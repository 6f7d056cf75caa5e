/** Job parameters: placeholders in the plan, values given at submit time. */
import { MissingParameterError } from "../errors.js";

/** A reference to a job parameter; the plan stores the reference, never the value. */
export class ParamRef {
  constructor(
    readonly name: string,
    readonly defaultValue?: string,
  ) {}

  /** The plan form of the reference. */
  toJSON(): { $param: string; default?: string } {
    return this.defaultValue === undefined ? { $param: this.name } : { $param: this.name, default: this.defaultValue };
  }
}

/** A string given literally or as a job parameter. */
export type StringOrParam = string | ParamRef;

/** The plan form of a string-or-parameter. */
export type PlanString = string | { $param: string; default?: string };

/** Turns a string-or-parameter into its plan form. */
export function toPlanString(value: StringOrParam): PlanString {
  return typeof value === "string" ? value : value.toJSON();
}

/** Resolves a plan string against the job's parameters; the error names the missing parameter and who needs it. */
export function resolvePlanString(value: PlanString, params: Readonly<Record<string, string>>, where: string): string {
  if (typeof value === "string") return value;
  const given = params[value.$param];
  if (given !== undefined) return given;
  if (value.default !== undefined) return value.default;
  throw new MissingParameterError(value.$param, `${where} needs job parameter "${value.$param}", which was not given (pass --param ${value.$param}=...)`);
}
