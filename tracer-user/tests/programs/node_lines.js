'use strict';
// Keeps open the descriptors leakyOpen opens: its call of fs.openSync is
// three lines below the line that defines it. Run with node's
// --allow-natives-syntax (the last call runs TurboFan's code of leakyOpen,
// which V8's jitdump gives source positions for) and --no-turbo-inlining
// (openSync inlined would give the call node:fs's position).
const fs = require('fs');
const kept = [];

function leakyOpen(path) {
  const flags = 'r';
  const mode = 0o644;
  kept.push(fs.openSync(path, flags, mode)); // @call
}

%PrepareFunctionForOptimization(leakyOpen);
leakyOpen('/dev/null');
leakyOpen('/dev/null');
%OptimizeFunctionOnNextCall(leakyOpen);
leakyOpen('/dev/null');
if (!%ActiveTierIsTurbofan(leakyOpen)) {
  throw new Error('leakyOpen is not optimized');
}
console.log(`kept ${kept.length}`);
