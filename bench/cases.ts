/**
 * The benchmark registry: every case `npm run bench` knows, in the order it runs them. A new case
 * is one import and one line here.
 */
import type { BenchCase } from "./case.js";
import { boundedCase } from "./bounded/case.js";
import { historyCase } from "./history.js";
import { kafkaCase } from "./kafka-case.js";
import { scaleCase } from "./scale.js";

/** All cases, in run order. */
export const CASES: readonly BenchCase[] = [boundedCase, historyCase, scaleCase, kafkaCase];
