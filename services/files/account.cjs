// cattery's account adapter for the files service: `node account.cjs <operation>`, one JSON object on stdin
// (secrets included), one JSON object on stdout; export writes a tar stream instead, import reads one after a line of
// JSON (import.cjs).
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { spawn } = require('node:child_process');
const { ROOT, withLock, usageOf, storeOperation, serveOperation } = require('./accounts-store.cjs');

// import reads its own input (a line of JSON, then the archive); every other operation reads one JSON object.
if (process.argv[2] === 'import') require('./import.cjs').importOperation();
else serveOperation((op, req, out) => {
  const user = req.username;
  const dir = path.join(ROOT, user);
  if (storeOperation(op, req, out)) {
    if (op === 'create') fs.mkdirSync(dir, { recursive: true });
    return true;
  }
  switch (op) {
    case 'usage':
      out({ ok: true, ...usageOf(dir) });
      return true;
    case 'export':
      fs.mkdirSync(dir, { recursive: true });
      spawn('tar', ['-C', ROOT, '-cf', '-', '--', user], { stdio: ['ignore', 'inherit', 'inherit'] }).on('close', (code) => process.exit(code ?? 1));
      return true;
    case 'delete':
      withLock((users) => { delete users[user]; });
      fs.rmSync(dir, { recursive: true, force: true });
      out({ ok: true });
      return true;
    default:
      return false;
  }
});
