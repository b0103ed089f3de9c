import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';

// A throw-away self-signed certificate for localhost and 127.0.0.1 (openssl), as a user
// would make one for a test, or certbot would put in place.

export interface TestCert {
  cert: string;
  key: string;
  /** The PEM text, for clients that should trust it. */
  pem: string;
}

export async function makeCert(dir: string, name = 'gateway'): Promise<TestCert> {
  const cert = path.join(dir, `${name}.crt`);
  const key = path.join(dir, `${name}.key`);
  await promisify(execFile)('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', key, '-out', cert, '-days', '2', '-subj', `/CN=localhost/O=${name}`,
    '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
  ]);
  return { cert, key, pem: await readFile(cert, 'utf8') };
}
