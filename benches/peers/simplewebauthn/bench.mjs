// @simplewebauthn/server 14 verifying every assertion of INPUT (from
// `assertd-loadgen peer-input`) in a loop, starting from the JSON a browser
// posts; prints verifies/s as JSON. Node verifies through WebCrypto, which
// may use libuv's thread pool: run it pinned to one core (taskset) to
// compare per core.
//
// Usage: node bench.mjs INPUT SECONDS
import { readFileSync } from 'node:fs';
import { verifyAuthenticationResponse } from '@simplewebauthn/server';
import { isoBase64URL } from '@simplewebauthn/server/helpers';

const [input, seconds] = [process.argv[2], Number(process.argv[3] ?? 5)];
const version = JSON.parse(readFileSync(new URL('./node_modules/@simplewebauthn/server/package.json', import.meta.url), 'utf8')).version;
const items = JSON.parse(readFileSync(input, 'utf8'));
const prepared = items.map((it) => ({
  body: JSON.stringify({
    id: it.credential_id,
    rawId: it.credential_id,
    type: 'public-key',
    response: {
      authenticatorData: it.authenticator_data,
      clientDataJSON: it.client_data_json,
      signature: it.signature,
    },
    clientExtensionResults: {},
  }),
  challenge: it.challenge,
  origin: it.origin,
  rpID: it.rp_id,
  credential: { id: it.credential_id, publicKey: isoBase64URL.toBuffer(it.public_key_cose), counter: 0 },
}));

async function verify(p) {
  const r = await verifyAuthenticationResponse({
    response: JSON.parse(p.body),
    expectedChallenge: p.challenge,
    expectedOrigin: p.origin,
    expectedRPID: p.rpID,
    credential: p.credential,
    requireUserVerification: true,
  });
  if (!r.verified) throw new Error('not verified');
}

for (const p of prepared) await verify(p);
let n = 0;
const start = performance.now();
while (performance.now() - start < seconds * 1000) {
  for (let k = 0; k < 100; k++) {
    await verify(prepared[n % prepared.length]);
    n++;
  }
}
const rate = n / ((performance.now() - start) / 1000);
console.log(JSON.stringify({ peer: `@simplewebauthn/server ${version}`, assertions: prepared.length, verifies_per_second: rate }));
