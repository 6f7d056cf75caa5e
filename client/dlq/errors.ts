/** Errors of `sage dlq`: each a class with a code, as in core/errors.ts. */
import { SageError } from "../../core/errors.js";

/** A redrive id already names a redrive started with another selection or target. */
export class RedriveConflictError extends SageError {
  constructor(
    /** The redrive id. */
    readonly redrive: string,
    message: string,
  ) {
    super("REDRIVE_CONFLICT", message, { input: true });
  }
}

/** A redrive cannot start: no worker or job to take its records, or another redrive of the job is still running. */
export class RedriveRefusedError extends SageError {
  constructor(message: string) {
    super("REDRIVE_REFUSED", message, { input: true });
  }
}
