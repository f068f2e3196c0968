// Relays messages between the caller and one outbound WebSocket, both ways.
//
// Settings: `target` (the outbound URL), optional `subprotocols` (comma-separated), `leg`
// (the outbound connection's leg), `timeout_ms`, and `header.<name>` entries sent as
// handshake headers. An `Authorization` header for the target is injected by the host
// (`secret_headers` in its configuration): this code never sees it. When the connect
// fails the caller gets `connect-failed: <error>` and a 1011 close. Either side's close is
// passed on to the other side with the same code. A side whose peer stops reading stalls
// only its own direction: the other keeps flowing.
import {
  WebSocketError,
  connect,
  describe,
  forwardableCode,
  mark,
  receive,
  release,
  setting,
  settingsWithPrefix,
  text,
  trySend,
  waitAnyOnce,
  type CloseFrame,
  type Connection,
  type Message,
  type RequestInfo,
} from '@switchboard/guest';

export const handler = {
  handle(_request: RequestInfo, inbound: Connection): void {
    const target = setting('target');
    if (target === undefined) {
      mark('relay.no-target');
      inbound.close(1011, 'relay: no target configured');
      return;
    }
    let outbound: Connection;
    try {
      const timeout = setting('timeout_ms');
      outbound = connect(target, {
        headers: settingsWithPrefix('header.'),
        subprotocols: (setting('subprotocols') ?? '').split(',').map((p) => p.trim()).filter((p) => p !== ''),
        timeoutMs: timeout === undefined ? undefined : Number(timeout),
        leg: setting('leg'),
      });
    } catch (error) {
      const reason = error instanceof WebSocketError ? describe(error.code) : String(error);
      mark('relay.connect-failed', { error: reason });
      trySend(inbound, text(`connect-failed: ${reason}`));
      inbound.close(1011, 'outbound connect failed');
      return;
    }
    mark('relay.connected', { protocol: outbound.protocol() ?? '' });
    pump(inbound, outbound);
    release(outbound);
  },
};

/** Moves messages both ways until one side ends, then closes the other with its code. */
function pump(inbound: Connection, outbound: Connection): void {
  const toOutbound: Message[] = [];
  const toInbound: Message[] = [];
  for (;;) {
    const ended = move(inbound, outbound, toOutbound) ?? move(outbound, inbound, toInbound);
    if (ended !== undefined) {
      const [frame, other] = ended;
      try {
        other.close(forwardableCode(frame), frame.reason);
      } catch {
        // Already closed: nothing to pass on.
      }
      mark('relay.closed', { code: String(frame.code) });
      return;
    }
    // A side with nothing pending can receive; one with pending messages waits for room.
    waitAnyOnce([
      toOutbound.length === 0 ? inbound.subscribe() : outbound.writable(),
      toInbound.length === 0 ? outbound.subscribe() : inbound.writable(),
    ]);
  }
}

/** Forwards what `from` has buffered to `to`; the close frame and the side to close once `from` ends. */
function move(from: Connection, to: Connection, pending: Message[]): [CloseFrame, Connection] | undefined {
  for (;;) {
    while (pending.length > 0) {
      try {
        if (!trySend(to, pending[0])) {
          mark('relay.backpressure', { queued: String(to.queuedBytes()) });
          return undefined;
        }
        pending.shift();
      } catch (error) {
        if (error instanceof WebSocketError && error.closed) return [error.closed, from];
        mark('relay.send-failed', { error: String(error) });
        return [{ code: 1011, reason: 'relay send failed' }, from];
      }
    }
    let next;
    try {
      next = receive(from);
    } catch (error) {
      mark('relay.receive-failed', { error: String(error) });
      return [{ code: 1011, reason: 'relay receive failed' }, to];
    }
    if (next === undefined) return undefined;
    if (next.tag === 'closed') return [next.val, to];
    pending.push(next);
  }
}
