/**
 * Errors of keyed state. Each fails only the record in hand (it goes to the dead letters with the
 * message, and the job goes on); none is retriable, since the same record fails the same way.
 */
import { SageError } from "../../core/errors.js";

/** A state value JSON cannot carry faithfully; the message names the state and what was wrong. */
export class StateValueError extends SageError {
  constructor(message: string) {
    super("STATE_VALUE", message);
  }
}

/** A record without event time reached an operator that works in event time. */
export class MissingTimestampError extends SageError {
  constructor(message: string) {
    super("MISSING_TIMESTAMP", message);
  }
}

/** A state name used as two kinds of state (a value and a list, say), or a timer at no valid time. */
export class StateUsageError extends SageError {
  constructor(message: string) {
    super("STATE_USAGE", message);
  }
}
