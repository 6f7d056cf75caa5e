/** The task queue of a pipeline: configured, else `sage-<pipeline>`; and who polls it. */
import type { Client } from "@temporalio/client";
import proto from "@temporalio/proto";
import type { SageConfig } from "../core/config/schema.js";

/** Task queue a pipeline's jobs and workers use. */
export function taskQueueOf(pipeline: string, config: SageConfig): string {
  return config.temporal["task-queue"] ?? `sage-${pipeline}`;
}

/** Pollers of a task queue seen by the server lately (workflow and activity pollers): 0 means no worker serves it. */
export async function taskQueuePollers(temporal: Client, namespace: string, taskQueue: string): Promise<number> {
  const types = [proto.temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW, proto.temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY];
  let n = 0;
  for (const taskQueueType of types) {
    const r = await temporal.workflowService.describeTaskQueue({ namespace, taskQueue: { name: taskQueue }, taskQueueType });
    n += r.pollers?.length ?? 0;
  }
  return n;
}
