// The component on a real `switchboard serve` on loopback (port 0), driven by a real
// WebSocket client. The host binary is $SWITCHBOARD, else `switchboard` on the PATH.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/** Starts the host with this project's configuration; resolves to its public address. */
async function serve(t) {
  const scratch = mkdtempSync(join(tmpdir(), '{{name}}-'));
  const ready = join(scratch, 'ready.json');
  const host = spawn(
    process.env.SWITCHBOARD ?? 'switchboard',
    ['serve', '--config', 'switchboard.toml', '--listen', '127.0.0.1:0', '--operator-listen', '127.0.0.1:0', '--ready-file', ready],
    { stdio: ['ignore', 'inherit', 'inherit'] },
  );
  t.after(() => {
    host.kill();
    rmSync(scratch, { recursive: true, force: true });
  });
  // The first start compiles the component (seconds); later ones load it from .switchboard.
  for (let waited = 0; waited < 180_000; waited += 100) {
    if (host.exitCode !== null) throw new Error(`switchboard serve exited with ${host.exitCode}`);
    try {
      return JSON.parse(readFileSync(ready, 'utf8')).public;
    } catch {
      await sleep(100);
    }
  }
  throw new Error('switchboard serve did not get ready');
}

/** The socket's events as promises, in order. */
function events(socket) {
  const queue = [];
  const waiting = [];
  const push = (event) => (waiting.length > 0 ? waiting.shift()(event) : queue.push(event));
  socket.addEventListener('message', (event) => push({ message: event.data }));
  socket.addEventListener('close', (event) => push({ close: event.code }));
  socket.addEventListener('error', () => push({ error: true }));
  return () => (queue.length > 0 ? Promise.resolve(queue.shift()) : new Promise((resolve) => waiting.push(resolve)));
}

test('echoes and ends the call cleanly', async (t) => {
  const address = await serve(t);
  const socket = new WebSocket(`ws://${address}/media`);
  const next = events(socket);
  await new Promise((resolve, reject) => {
    socket.addEventListener('open', resolve, { once: true });
    socket.addEventListener('error', reject, { once: true });
  });
  socket.send('hello');
  assert.deepEqual(await next(), { message: 'hello' });
  socket.send('bye');
  assert.deepEqual(await next(), { close: 1000 });
});
