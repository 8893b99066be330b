// A gateway's view of assertd, in Node.js with @grpc/grpc-js:
//   1. (admin) store a passkey's public key with CredentialService.PutCredential;
//   2. (gateway) verify a signed assertion with VerificationService.VerifyAssertions,
//      bound to the expected user and the offered credential;
//   3. read the verdict and act on it.
// A real browser produces the assertion; here a P-256 key made with Node's
// crypto module plays the authenticator, so the example runs anywhere.
//
//   npm ci && node index.js [host:port] [rp id]     (defaults: 127.0.0.1:50051, login.example.com)
//   ASSERTD_TOKEN=... sends `authorization: Bearer ...` when the server has [[clients]].
'use strict';

const path = require('path');
const crypto = require('crypto');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const target = process.argv[2] || '127.0.0.1:50051';
const rpId = process.argv[3] || 'login.example.com';
const origin = `https://${rpId}`;

const definition = protoLoader.loadSync(['assertd/v1/verification.proto', 'assertd/v1/credentials.proto'], {
  includeDirs: [path.join(__dirname, '..', '..', 'proto')],
  keepCase: true, // field names as in the .proto (rp_id, credential_id, ...)
  enums: String, // enum values by name (DECISION_ALLOW, ...)
  longs: Number,
  defaults: true,
});
const v1 = grpc.loadPackageDefinition(definition).assertd.v1;
const credentials = grpc.credentials.createInsecure(); // use createSsl(ca, key, cert) in production
const verifier = new v1.VerificationService(target, credentials);
const admin = new v1.CredentialService(target, credentials);

function metadata() {
  const md = new grpc.Metadata();
  if (process.env.ASSERTD_TOKEN) md.set('authorization', `Bearer ${process.env.ASSERTD_TOKEN}`);
  md.set('x-request-id', crypto.randomUUID());
  return md;
}

const call = (client, method, request) =>
  new Promise((resolve, reject) =>
    client[method](request, metadata(), { deadline: Date.now() + 5000 }, (err, res) => (err ? reject(err) : resolve(res))),
  );

// COSE_Key of an EC2 P-256 key (RFC 9053): {1: 2, 3: -7, -1: 1, -2: x, -3: y},
// CBOR-encoded by hand (five small integers and two 32-byte strings).
function coseKey(publicKey) {
  const jwk = publicKey.export({ format: 'jwk' });
  const x = Buffer.from(jwk.x, 'base64url');
  const y = Buffer.from(jwk.y, 'base64url');
  const bytes32 = (b) => Buffer.concat([Buffer.from([0x58, 0x20]), b]);
  return Buffer.concat([
    Buffer.from([0xa5]), // map of 5
    Buffer.from([0x01, 0x02]), // kty: EC2
    Buffer.from([0x03, 0x26]), // alg: -7 (ES256)
    Buffer.from([0x20, 0x01]), // crv: P-256
    Buffer.from([0x21]), bytes32(x), // x
    Buffer.from([0x22]), bytes32(y), // y
  ]);
}

// What navigator.credentials.get() returns, made by a software authenticator.
function assert(privateKey, challenge, signCount) {
  const clientDataJSON = Buffer.from(
    JSON.stringify({ type: 'webauthn.get', challenge: challenge.toString('base64url'), origin, crossOrigin: false }),
  );
  const flags = 0x01 | 0x04; // UP and UV
  const count = Buffer.alloc(4);
  count.writeUInt32BE(signCount);
  const authenticatorData = Buffer.concat([crypto.createHash('sha256').update(rpId).digest(), Buffer.from([flags]), count]);
  const signed = Buffer.concat([authenticatorData, crypto.createHash('sha256').update(clientDataJSON).digest()]);
  const signature = crypto.sign('sha256', signed, privateKey); // DER, as WebAuthn sends ES256
  return { clientDataJSON, authenticatorData, signature };
}

// An Assertion message from what the browser sent, plus the gateway's
// bindings (`extra`).
function assertion(requestId, credentialId, response, challenge, extra = {}) {
  return {
    request_id: requestId,
    rp_id: rpId,
    credential_id: credentialId,
    client_data_json: response.clientDataJSON,
    authenticator_data: response.authenticatorData,
    signature: response.signature,
    expected_challenge: challenge,
    ...extra,
  };
}

async function main() {
  const { publicKey, privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const credentialId = crypto.randomBytes(16);
  const userHandle = Buffer.from('user-42');

  // 1. Registration happened elsewhere; the admin stores the public key.
  await call(admin, 'PutCredential', {
    credential: {
      rp_id: rpId,
      credential_id: credentialId,
      user_handle: userHandle,
      public_key_cose: coseKey(publicKey),
      sign_count: 0,
      transports: ['usb'],
    },
  });

  // 2. A username-first sign-in: the gateway issued `challenge`, offered
  //    this credential, and knows the user.
  const challenge = crypto.randomBytes(32);
  const response = assert(privateKey, challenge, 1);
  const { verdicts } = await call(verifier, 'VerifyAssertions', {
    assertions: [
      assertion('sign-in-1', credentialId, response, challenge, {
        expected_user_handle: userHandle,
        allowed_credential_ids: [credentialId],
        context: { client_ip: '203.0.113.7', trusted_network: true },
      }),
    ],
  });

  // 3. Act on the verdict.
  const v = verdicts[0];
  const reasons = v.reasons.map((r) => r.code).join(', ') || 'none';
  console.log(`${v.request_id}: ${v.decision} (risk ${v.risk_score}; reasons: ${reasons})`);
  if (v.decision !== 'DECISION_ALLOW') {
    throw new Error(`expected DECISION_ALLOW, got ${v.decision}: ${JSON.stringify(v.reasons)}`);
  }
  if (!Buffer.from(v.authenticator.user_handle).equals(userHandle)) {
    throw new Error('the verdict names another user');
  }

  // The same assertion again is a replay: its sign count does not advance.
  const replay = await call(verifier, 'VerifyAssertions', {
    assertions: [assertion('sign-in-1-replayed', credentialId, response, challenge)],
  });
  const r = replay.verdicts[0];
  console.log(`${r.request_id}: ${r.decision} (reasons: ${r.reasons.map((x) => x.code).join(', ')})`);
  if (r.decision !== 'DECISION_DENY' || r.reasons[0].code !== 'REASON_CODE_SIGN_COUNT_REGRESSION') {
    throw new Error(`expected a counter regression, got ${JSON.stringify(r)}`);
  }
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(e.message || e);
    process.exit(1);
  },
);
