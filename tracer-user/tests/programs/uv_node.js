// Node.js: five client sockets connected from a user function (Node
// connects on a later tick) and the server's side of each, which the
// server keeps. Nothing is closed; the process exits once all are in.
// Argument `optimized` (node run with --allow-natives-syntax
// --no-turbo-inlining): two of the clients from leakyConnect interpreted,
// three from its TurboFan code, whose jitdump positions give the call's line.
'use strict';
const net = require('net');

const CLIENTS = 5;
const clients = [];
const peers = [];
let connected = 0;

function finish() {
  if (connected === CLIENTS && peers.length === CLIENTS) {
    process.stdout.write(`connected ${connected} accepted ${peers.length}\n`);
    process.exit(0);
  }
}

function leakyConnect(port, n) {
  for (let i = 0; i < n; i++) {
    const c = net.connect(port, '127.0.0.1', () => {
      connected++;
      finish();
    });
    clients.push(c);
  }
}

// V8's intrinsics, parsed only when asked for (a syntax error without the flag).
function natives(code) {
  return new Function('f', code);
}

function connectAll(port) {
  if (process.argv[2] !== 'optimized') {
    leakyConnect(port, CLIENTS);
    return;
  }
  natives('%PrepareFunctionForOptimization(f)')(leakyConnect);
  leakyConnect(port, 1);
  leakyConnect(port, 1);
  natives('%OptimizeFunctionOnNextCall(f)')(leakyConnect);
  leakyConnect(port, CLIENTS - 2);
  if (!natives('return %ActiveTierIsTurbofan(f)')(leakyConnect)) {
    throw new Error('leakyConnect is not optimized');
  }
}

function startServer() {
  const server = net.createServer((peer) => {
    peers.push(peer);
    finish();
  });
  server.listen(0);
  return server;
}

const server = startServer();
server.on('listening', () => connectAll(server.address().port));
