/** Errors of savepoints: what was wrong with one, and where. */
import { SageError } from "../../core/errors.js";

/**
 * A savepoint cannot be taken, read or restored: missing, corrupt or truncated, of another
 * pipeline, of a newer format, or holding state the new pipeline would drop. Nothing was started.
 */
export class SavepointError extends SageError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super("SAVEPOINT", message, { ...options, input: true, scope: "job" });
  }
}
