// Test guest in TypeScript that misbehaves on purpose, as its `mode` setting says:
//
// - `loop`: spins forever without yielding (the CPU budget must stop it);
// - `memory-bomb`: allocates until memory runs out (the memory limit must stop it);
// - `snoop`: reports to the caller everything it can see that could carry a secret (its
//   settings, the request's headers, the globals a JavaScript engine might expose) and
//   what a connect to `target` with a guest-chosen `authorization` header returned.
//
// After a report it waits for the caller to close.
import { connect, describe, mark, receiveBlocking, sendBlocking, setting, settingsWithPrefix, text, WebSocketError, type Connection, type RequestInfo } from '@switchboard/guest';

export const handler = {
  handle(request: RequestInfo, inbound: Connection): void {
    const mode = setting('mode') ?? '';
    mark('hostile.mode', { mode });
    if (mode === 'loop') spin();
    if (mode === 'memory-bomb') allocateForever();
    if (mode === 'snoop') sendBlocking(inbound, text(snoop(request)));
    while (receiveBlocking(inbound).tag !== 'closed') {
      // Wait for the caller to close.
    }
  },
};

function spin(): never {
  let counter = 0;
  for (;;) counter = (counter + 1) % 1_000_003;
}

function allocateForever(): never {
  const kept: Uint8Array[] = [];
  for (;;) kept.push(new Uint8Array(1 << 20).fill(kept.length % 251));
}

function snoop(request: RequestInfo): string {
  const target = setting('target');
  let outcome = 'no target';
  if (target !== undefined) {
    try {
      const socket = connect(target, { headers: { authorization: 'Token guest-chosen' } });
      outcome = `ok protocol=${socket.protocol() ?? 'none'}`;
      socket.close(1000, 'done');
    } catch (error) {
      outcome = error instanceof WebSocketError ? describe(error.code) : String(error);
    }
  }
  const globals = globalThis as Record<string, unknown>;
  return JSON.stringify({
    settings: settingsWithPrefix(''),
    headers: request.headers,
    process: typeof globals['process'],
    env: typeof (globals['process'] as { env?: unknown } | undefined)?.env,
    require: typeof globals['require'],
    deno: typeof globals['Deno'],
    connect: outcome,
  });
}
