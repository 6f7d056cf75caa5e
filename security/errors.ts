/** The errors of payload encryption: keys that cannot be loaded, payloads that cannot be decrypted. */
import { SageError } from "../core/errors.js";

/**
 * The encryption keys named by `security.encryption` cannot be used (a missing file or variable, a
 * malformed entry, a key of the wrong size, an active key not listed). Raised before anything
 * connects, so no job is half-started.
 */
export class EncryptionKeyError extends SageError {
  constructor(message: string) {
    super("ENCRYPTION_KEY", message, { input: true, scope: "job" });
  }
}

/**
 * An encrypted payload cannot be decrypted: its key id is missing or not among the loaded keys, or
 * the key under that id is not the one it was encrypted with (or the payload was altered). Retrying
 * cannot help; loading the right key does.
 */
export class PayloadDecryptionError extends SageError {
  constructor(
    /** The key id the payload names (null when it names none). */
    readonly keyId: string | null,
    /** Where the loaded keys came from (`file /etc/sage/keys`, `environment variable SAGE_KEYS`). */
    readonly keySource: string,
    message: string,
    options: { cause?: unknown } = {},
  ) {
    super("PAYLOAD_DECRYPTION", message, { input: true, scope: "job", ...options });
  }
}
