// The failure converter of an encrypted job (`security.encryption`): a failure's message and stack
// trace travel in its encoded attributes, a payload the encryption codec encrypts like any other,
// so history keeps only "Encoded failure" in clear. CommonJS, because Temporal loads it by path,
// both into the workflow bundle (webpack) and into the client and worker (require).
"use strict";
// eslint-disable-next-line @typescript-eslint/no-require-imports -- a CommonJS module, loaded by path
const { DefaultFailureConverter } = require("@temporalio/common");

/** Moves message and stack into the encrypted attributes. */
exports.failureConverter = new DefaultFailureConverter({ encodeCommonAttributes: true });
