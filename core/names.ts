/**
 * The one rule for names a pipeline gives (pipeline, parameter, output tag, operator and Kafka topic
 * names): they end up in workflow ids, activity types, file paths and Kafka requests, so they keep
 * to letters, digits and `_.-`.
 */

const NAME = /^[A-Za-z0-9_.-]+$/;
/** Operator names and uids may also contain `:`. */
const OPERATOR_NAME = /^[A-Za-z0-9_.:-]+$/;
/** Kafka's own limit on a topic name's length. */
const TOPIC_MAX = 249;

/** What a name may contain, as error messages say it. */
export const NAME_CHARS = "[A-Za-z0-9_.-]+";

/** What an operator name or uid may contain, as error messages say it. */
export const OPERATOR_NAME_CHARS = "[A-Za-z0-9_.:-]+";

/** True for a valid pipeline, parameter or output tag name. */
export function isName(value: string): boolean {
  return NAME.test(value);
}

/** True for a valid operator name or uid. */
export function isOperatorName(value: string): boolean {
  return OPERATOR_NAME.test(value);
}

/** True for a valid Kafka topic name: a name of at most 249 characters. */
export function isTopicName(value: unknown): value is string {
  return typeof value === "string" && value.length <= TOPIC_MAX && NAME.test(value);
}

/** `jobId` as a file name: every character outside the name rule becomes `_` (job ids are free text). */
export function jobFileName(jobId: string): string {
  return jobId.replace(/[^A-Za-z0-9_.-]/g, "_");
}
