/** The custom search attributes of Sage jobs, and how to make sure a server has them. */
import { defineSearchAttributeKey, SearchAttributeType } from "@temporalio/common";
import type { Connection } from "@temporalio/client";
import proto from "@temporalio/proto";
import { SA_JOB_ID, SA_PIPELINE } from "../core/plan/job.js";

/** Typed keys of the search attributes every job carries. */
export const SEARCH_ATTRIBUTES = {
  pipeline: defineSearchAttributeKey(SA_PIPELINE, SearchAttributeType.KEYWORD),
  jobId: defineSearchAttributeKey(SA_JOB_ID, SearchAttributeType.KEYWORD),
};

/**
 * Registers the search attributes when the server lacks them (the dev server allows it; on a real
 * cluster an operator runs `temporal operator search-attribute create --name SagePipeline --type Keyword`,
 * same for SageJobId). Returns false when they are missing and could not be added.
 */
export async function ensureSearchAttributes(connection: Connection, namespace: string): Promise<boolean> {
  const have = await connection.operatorService.listSearchAttributes({ namespace });
  const missing = [SA_PIPELINE, SA_JOB_ID].filter((n) => !(n in (have.customAttributes ?? {})));
  if (missing.length === 0) return true;
  try {
    await connection.operatorService.addSearchAttributes({
      namespace,
      searchAttributes: Object.fromEntries(missing.map((n) => [n, proto.temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD])),
    });
    return true;
  } catch {
    return false;
  }
}
