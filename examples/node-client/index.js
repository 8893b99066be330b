// A gateway's view of assertd, in Node.js with @grpc/grpc-js. The gateway
// keeps no WebAuthn logic of its own: assertd builds the options, the page
// runs the ceremony, and the gateway relays the browser's JSON back.
//
//   1. registration: BeginRegistration -> options_json to the page ->
//      the page's credential.toJSON() -> RegisterCredential { response_json };
//   2. sign-in: BeginAuthentication -> options_json to the page ->
//      credential.toJSON() -> VerifyAssertions { response_json,
//      server_issued_challenge }; act on the verdict;
//   3. after an allow: GetUserSignals, for the page's WebAuthn signal calls.
//
// A real browser runs the ceremonies; here a P-256 key made with Node's
// crypto module plays the authenticator (and builds what toJSON() gives),
// so the example runs anywhere. The server needs [challenges] keys.
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
const enrolment = new v1.CredentialService(target, credentials);

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

// ---------------------------------------------------------------------------
// The browser's side, played in software: what navigator.credentials.create()
// and get() return, as PublicKeyCredential.toJSON() serializes it.

const b64u = (b) => Buffer.from(b).toString('base64url');
const sha256 = (b) => crypto.createHash('sha256').update(b).digest();

// CBOR heads (RFC 8949) for the few shapes an attestation object needs.
const head = (major, n) =>
  n < 24 ? Buffer.from([(major << 5) | n]) : n < 256 ? Buffer.from([(major << 5) | 24, n]) : Buffer.from([(major << 5) | 25, n >> 8, n & 255]);
const cborBytes = (b) => Buffer.concat([head(2, b.length), b]);
const cborText = (s) => Buffer.concat([head(3, Buffer.byteLength(s)), Buffer.from(s)]);

// COSE_Key of an EC2 P-256 key (RFC 9053): {1: 2, 3: -7, -1: 1, -2: x, -3: y}.
function coseKey(publicKey) {
  const jwk = publicKey.export({ format: 'jwk' });
  return Buffer.concat([
    Buffer.from([0xa5, 0x01, 0x02, 0x03, 0x26, 0x20, 0x01]), // map of 5; kty EC2; alg -7; crv P-256
    Buffer.from([0x21]), cborBytes(Buffer.from(jwk.x, 'base64url')),
    Buffer.from([0x22]), cborBytes(Buffer.from(jwk.y, 'base64url')),
  ]);
}

function clientData(type, challenge) {
  return Buffer.from(JSON.stringify({ type, challenge, origin, crossOrigin: false }));
}

// A RegistrationResponseJSON for the creation options, attestation "none".
function create(options, key) {
  const clientDataJSON = clientData('webauthn.create', options.challenge);
  const flags = 0x01 | 0x04 | 0x40; // UP, UV, AT
  const id = key.credentialId;
  const authData = Buffer.concat([
    sha256(options.rp.id), Buffer.from([flags]), Buffer.alloc(4), // sign count 0
    Buffer.alloc(16), // AAGUID: none
    Buffer.from([id.length >> 8, id.length & 255]), id, coseKey(key.publicKey),
  ]);
  // {"fmt": "none", "attStmt": {}, "authData": authData}
  const attestationObject = Buffer.concat([Buffer.from([0xa3]), cborText('fmt'), cborText('none'), cborText('attStmt'), Buffer.from([0xa0]), cborText('authData'), cborBytes(authData)]);
  return JSON.stringify({
    id: b64u(id),
    rawId: b64u(id),
    response: { clientDataJSON: b64u(clientDataJSON), attestationObject: b64u(attestationObject), transports: ['internal', 'hybrid'] },
    authenticatorAttachment: 'platform',
    clientExtensionResults: { credProps: { rk: true } },
    type: 'public-key',
  });
}

// An AuthenticationResponseJSON for the request options.
function get(options, key, userHandle) {
  const clientDataJSON = clientData('webauthn.get', options.challenge);
  const authenticatorData = Buffer.concat([sha256(options.rpId), Buffer.from([0x01 | 0x04]), Buffer.alloc(4)]); // UP, UV; counter-less
  const signature = crypto.sign('sha256', Buffer.concat([authenticatorData, sha256(clientDataJSON)]), key.privateKey); // DER, as WebAuthn sends ES256
  return JSON.stringify({
    id: b64u(key.credentialId),
    rawId: b64u(key.credentialId),
    response: { clientDataJSON: b64u(clientDataJSON), authenticatorData: b64u(authenticatorData), signature: b64u(signature), userHandle: b64u(userHandle) },
    authenticatorAttachment: 'platform',
    clientExtensionResults: {},
    type: 'public-key',
  });
}

// ---------------------------------------------------------------------------
// The gateway.

async function main() {
  const key = { ...crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }), credentialId: crypto.randomBytes(16) };
  const userHandle = crypto.randomBytes(16);

  // 1. Registration: assertd builds the options; the page's JSON goes back
  //    as it came.
  const reg = await call(enrolment, 'BeginRegistration', { rp_id: rpId, user_handle: userHandle, user_name: 'ada@example.com' });
  const created = create(JSON.parse(reg.options_json), key);
  const registered = await call(enrolment, 'RegisterCredential', {
    rp_id: rpId,
    user_handle: userHandle,
    server_issued_challenge: true,
    response_json: created,
  });
  console.log(`registration: ${registered.verdict.decision} (discoverable ${registered.credential && registered.credential.discoverable})`);
  if (registered.verdict.decision !== 'DECISION_ALLOW') throw new Error(`registration: ${JSON.stringify(registered.verdict)}`);

  // 2. A username-first sign-in: the options list the user's credentials;
  //    the verdict binds the sign-in to that user.
  const begin = await call(verifier, 'BeginAuthentication', { rp_id: rpId, user_handle: userHandle });
  const options = JSON.parse(begin.options_json);
  const offered = options.allowCredentials.map((c) => Buffer.from(c.id, 'base64url'));
  const signedIn = get(options, key, userHandle);
  const request = {
    rp_id: rpId,
    response_json: signedIn,
    server_issued_challenge: true,
    expected_user_handle: userHandle,
    allowed_credential_ids: offered,
    context: { client_ip: '203.0.113.7', trusted_network: true },
  };
  const { verdicts } = await call(verifier, 'VerifyAssertions', { assertions: [{ request_id: 'sign-in-1', ...request }] });
  const v = verdicts[0];
  const reasons = v.reasons.map((r) => r.code).join(', ') || 'none';
  console.log(`${v.request_id}: ${v.decision} (risk ${v.risk_score}; reasons: ${reasons})`);
  if (v.decision !== 'DECISION_ALLOW') throw new Error(`expected DECISION_ALLOW, got ${v.decision}: ${JSON.stringify(v.reasons)}`);
  if (!Buffer.from(v.authenticator.user_handle).equals(userHandle)) throw new Error('the verdict names another user');

  // 3. After the allow: what the page passes to the WebAuthn signal methods.
  const signals = await call(verifier, 'GetUserSignals', { rp_id: rpId, user_handle: userHandle, user_name: 'ada@example.com' });
  const accepted = JSON.parse(signals.all_accepted_credentials_json).allAcceptedCredentialIds;
  console.log(`signals: ${accepted.length} accepted credential(s)`);
  if (accepted.length !== 1 || accepted[0] !== b64u(key.credentialId)) throw new Error(`signals: ${JSON.stringify(signals)}`);

  // The same response again: its challenge is used up.
  const replay = await call(verifier, 'VerifyAssertions', { assertions: [{ request_id: 'sign-in-1-replayed', ...request }] });
  const r = replay.verdicts[0];
  console.log(`${r.request_id}: ${r.decision} (reasons: ${r.reasons.map((x) => x.code).join(', ')})`);
  if (r.decision !== 'DECISION_DENY' || r.reasons[0].code !== 'REASON_CODE_CHALLENGE_REPLAYED') {
    throw new Error(`expected a replayed challenge, got ${JSON.stringify(r)}`);
  }
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(e.message || e);
    process.exit(1);
  },
);
