// Runs the README's walk-through as written: every `grpcurl` command in the
// section "Walk-through" is sent with its own JSON body (through
// @grpc/grpc-js, since grpcurl is not packaged here), and the answer is
// compared with the ```json block that follows the command, as grpcurl would
// print it (proto3 JSON: lowerCamelCase names, enum names, bytes in base64,
// default values left out). A block may leave fields out; every field it
// shows must be there with that value.
//
//   node walkthrough.js README.md HOST:PORT
//
// The README's address (127.0.0.1:50051) is replaced by HOST:PORT.
'use strict';

const fs = require('fs');
const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const [readmePath, target] = process.argv.slice(2);
const README_ADDRESS = '127.0.0.1:50051';

const definition = protoLoader.loadSync(
  ['assertd/v1/verification.proto', 'assertd/v1/credentials.proto', path.join(__dirname, 'health.proto')],
  {
    includeDirs: [path.join(__dirname, '..', '..', '..', '..', 'proto'), __dirname],
    keepCase: false, // lowerCamelCase, as grpcurl prints
    enums: String,
    bytes: String, // base64, as grpcurl prints
    longs: String, // 64-bit integers as strings, as proto3 JSON
    defaults: false,
    oneofs: false,
  },
);

// "assertd.v1.CredentialService/PutCredential" -> a bound call.
function method(fullName) {
  const [service, rpc] = fullName.split('/');
  let ctor = grpc.loadPackageDefinition(definition);
  for (const part of service.split('.')) ctor = ctor && ctor[part];
  if (!ctor || !ctor.service) throw new Error(`unknown service ${service}`);
  const client = new ctor(target, grpc.credentials.createInsecure());
  const name = Object.keys(ctor.service).find((k) => ctor.service[k].originalName === lower(rpc) || k === rpc);
  if (!name) throw new Error(`unknown method ${fullName}`);
  return (request) =>
    new Promise((resolve, reject) =>
      client[name](request, { deadline: Date.now() + 10000 }, (err, res) => (err ? reject(err) : resolve(res))),
    );
}

const lower = (s) => s[0].toLowerCase() + s.slice(1);
const camel = (s) => s.replace(/_([a-z0-9])/g, (_, c) => c.toUpperCase());

// grpcurl accepts the proto field names (snake_case) and the JSON names.
function camelKeys(value) {
  if (Array.isArray(value)) return value.map(camelKeys);
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [camel(k), camelKeys(v)]));
  }
  return value;
}

// Every field of `expected` is in `actual` with the same value; arrays match
// element by element and have the same length.
function mismatch(expected, actual, where) {
  if (Array.isArray(expected)) {
    if (!Array.isArray(actual) || actual.length !== expected.length) {
      return `${where}: expected ${expected.length} elements, got ${JSON.stringify(actual)}`;
    }
    for (let i = 0; i < expected.length; i++) {
      const m = mismatch(expected[i], actual[i], `${where}[${i}]`);
      if (m) return m;
    }
    return null;
  }
  if (expected && typeof expected === 'object') {
    if (!actual || typeof actual !== 'object') return `${where}: expected an object, got ${JSON.stringify(actual)}`;
    for (const [k, v] of Object.entries(expected)) {
      const m = mismatch(v, actual[k], `${where}.${k}`);
      if (m) return m;
    }
    return null;
  }
  return expected === actual ? null : `${where}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`;
}

// The section's fenced blocks, in order: {lang, text}.
function walkthroughBlocks(markdown) {
  const start = markdown.search(/^## Walk-through/m);
  if (start < 0) throw new Error('no "## Walk-through" section in the README');
  const rest = markdown.slice(start + 3);
  const end = rest.search(/^## /m);
  const section = end < 0 ? rest : rest.slice(0, end);
  return [...section.matchAll(/^```(\w*)\n([\s\S]*?)^```$/gm)].map((m) => ({ lang: m[1], text: m[2] }));
}

// A shell block's commands, each as its words: single quotes, backslash-
// newline continuations and `#` comments, as sh reads them (no expansions:
// the walk-through has none).
function shellCommands(text) {
  const commands = [];
  let words = [];
  let word = null;
  let i = 0;
  const endWord = () => {
    if (word !== null) words.push(word);
    word = null;
  };
  const endCommand = () => {
    endWord();
    if (words.length) commands.push(words);
    words = [];
  };
  while (i < text.length) {
    const c = text[i];
    if (c === "'") {
      const close = text.indexOf("'", i + 1);
      if (close < 0) throw new Error('unterminated quote in the walk-through');
      word = (word || '') + text.slice(i + 1, close);
      i = close + 1;
    } else if (c === '\\' && text[i + 1] === '\n') {
      i += 2;
    } else if (c === '\n' || c === ';') {
      endCommand();
      i++;
    } else if (c === ' ' || c === '\t') {
      endWord();
      i++;
    } else if (c === '#' && word === null) {
      while (i < text.length && text[i] !== '\n') i++;
    } else {
      word = (word || '') + c;
      i++;
    }
  }
  endCommand();
  return commands;
}

// `grpcurl -plaintext -d JSON ADDRESS SERVICE/METHOD`.
function parseGrpcurl(words) {
  if (words.length !== 6 || words[1] !== '-plaintext' || words[2] !== '-d') {
    throw new Error(`not a grpcurl command this test understands: ${JSON.stringify(words)}`);
  }
  if (words[4] !== README_ADDRESS) throw new Error(`the walk-through talks to ${words[4]}, not ${README_ADDRESS}`);
  return { body: JSON.parse(words[3]), method: words[5] };
}

async function main() {
  const blocks = walkthroughBlocks(fs.readFileSync(readmePath, 'utf8'));
  let calls = 0;
  for (let i = 0; i < blocks.length; i++) {
    if (blocks[i].lang !== 'sh') continue;
    const grpcurls = shellCommands(blocks[i].text).filter((w) => w[0] === 'grpcurl');
    if (grpcurls.length === 0) continue;
    if (grpcurls.length !== 1) throw new Error('one grpcurl call per block, so that its answer follows it');
    const { body, method: name } = parseGrpcurl(grpcurls[0]);
    const answer = blocks[i + 1];
    if (!answer || answer.lang !== 'json') throw new Error(`no json answer after the call to ${name}`);
    const response = await method(name)(camelKeys(body));
    const wrong = mismatch(JSON.parse(answer.text), response, name);
    if (wrong) throw new Error(`${wrong}\nthe whole answer: ${JSON.stringify(response, null, 2)}`);
    calls++;
    console.log(`ok ${name}`);
  }
  if (calls === 0) throw new Error('the walk-through makes no calls');
  console.log(`walk-through: ${calls} calls answered as the README says`);
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err.message || err);
    process.exit(1);
  },
);
