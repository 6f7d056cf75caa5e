/** Throw-away certificates for TLS tests, made with openssl into a temp folder (no key material is committed). */
import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** PEM files of one generated test PKI. */
export interface TestCertificates {
  readonly dir: string;
  /** The CA that signed every certificate below. */
  readonly ca: string;
  /** A server certificate valid for `serverName` (its only name) for one day. */
  readonly serverCert: string;
  readonly serverKey: string;
  /** The same server name and key, but a certificate that expired in 2020. */
  readonly expiredServerCert: string;
  /** A client certificate (extendedKeyUsage clientAuth) for mTLS. */
  readonly clientCert: string;
  readonly clientKey: string;
  /** A CA that signed nothing here: trusting it alone must fail verification. */
  readonly otherCa: string;
}

// `openssl ca` is the only openssl 3.0 command that takes an explicit start date (for the expired cert).
const CA_CONFIG = `[ca]
default_ca = test_ca
[test_ca]
database = index.txt
new_certs_dir = .
serial = serial
default_md = sha256
policy = any_name
unique_subject = no
[any_name]
commonName = supplied
[server]
basicConstraints = CA:FALSE
keyUsage = digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:@NAME@
[client]
basicConstraints = CA:FALSE
keyUsage = digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
`;

/** Generates a CA, a server certificate for `serverName` (valid and expired), a client certificate and an unrelated CA. */
export function generateTestCertificates(serverName: string): TestCertificates {
  const dir = mkdtempSync(join(tmpdir(), "sage-tls-"));
  const ssl = (...args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: ["ignore", "ignore", "pipe"] });
  writeFileSync(join(dir, "ca.cnf"), CA_CONFIG.replace("@NAME@", serverName));
  writeFileSync(join(dir, "index.txt"), "");
  writeFileSync(join(dir, "serial"), "1000\n");
  const selfSigned = (name: string) =>
    ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", `${name}-key.pem`, "-out", `${name}.pem`, "-days", "2", "-subj", `/CN=sage test ${name}`);
  selfSigned("ca");
  selfSigned("other-ca");
  const sign = (name: string, key: string, cn: string, extensions: string, dates: string[]) => {
    ssl("req", "-new", "-key", key, "-out", `${name}.csr`, "-subj", `/CN=${cn}`);
    const ca = ["-batch", "-config", "ca.cnf", "-cert", "ca.pem", "-keyfile", "ca-key.pem", "-notext"];
    ssl("ca", ...ca, "-extfile", "ca.cnf", "-extensions", extensions, ...dates, "-in", `${name}.csr`, "-out", `${name}.pem`);
  };
  ssl("genrsa", "-out", "server-key.pem", "2048");
  ssl("genrsa", "-out", "client-key.pem", "2048");
  sign("server", "server-key.pem", serverName, "server", ["-days", "1"]);
  sign("server-expired", "server-key.pem", serverName, "server", ["-startdate", "20200101000000Z", "-enddate", "20200102000000Z"]);
  sign("client", "client-key.pem", "sage worker", "client", ["-days", "1"]);
  const at = (f: string) => join(dir, f);
  return {
    dir,
    ca: at("ca.pem"),
    serverCert: at("server.pem"),
    serverKey: at("server-key.pem"),
    expiredServerCert: at("server-expired.pem"),
    clientCert: at("client.pem"),
    clientKey: at("client-key.pem"),
    otherCa: at("other-ca.pem"),
  };
}
