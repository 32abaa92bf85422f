// Node.js: five client sockets connected from a user function (Node
// connects on a later tick) and the server's side of each, which the
// server keeps. Nothing is closed; the process exits once all are in.
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

function leakyConnect(port) {
  for (let i = 0; i < CLIENTS; i++) {
    const c = net.connect(port, '127.0.0.1', () => {
      connected++;
      finish();
    });
    clients.push(c);
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
server.on('listening', () => leakyConnect(server.address().port));
