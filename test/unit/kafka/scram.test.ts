/** The SCRAM client against the exchange RFC 7677 publishes, and its refusals. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { ScramExchange } from "../../../connectors/kafka/scram.js";

const SERVER_FIRST = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";

test("SCRAM-SHA-256 gives RFC 7677's messages and accepts its server signature", () => {
  const scram = new ScramExchange("scram-sha-256", "user", "pencil", "rOprNGfwEbeRWgbNEkqO");
  assert.equal(scram.first().toString(), "n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
  assert.equal(
    scram.final(Buffer.from(SERVER_FIRST)).toString(),
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
  );
  scram.verify(Buffer.from("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="));
});

test("a server that does not know the password, or answers with another nonce, is refused", () => {
  const scram = new ScramExchange("scram-sha-256", "user", "pencil", "rOprNGfwEbeRWgbNEkqO");
  scram.final(Buffer.from(SERVER_FIRST));
  assert.throws(() => scram.verify(Buffer.from("v=AAAATRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")), /signature does not match/);
  assert.throws(() => scram.verify(Buffer.from("e=invalid-proof")), /refused the SCRAM exchange: invalid-proof/);
  const other = new ScramExchange("scram-sha-512", "user", "pencil", "someOtherNonce");
  assert.throws(() => other.final(Buffer.from(SERVER_FIRST)), /malformed SCRAM server-first/);
});

test("a user name with = and , is escaped", () => {
  assert.equal(new ScramExchange("scram-sha-512", "a=b,c", "p", "n").first().toString(), "n,,n=a=3Db=2Cc,r=n");
});
