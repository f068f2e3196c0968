/**
 * Sockets: receiving, sending with backpressure, opening outbound connections.
 *
 * The imports never block; these helpers wait in `wasi:io/poll` where waiting is meant
 * (a full send queue, a handshake, an empty receive buffer), so a component reads like
 * blocking code while the host keeps serving every other call.
 */
import type { CloseFrame, Connection, Message } from 'switchboard:call/websocket@0.2.0';
import { connect as startConnect, type FutureConnection } from 'switchboard:call/outbound@0.2.0';
import { WebSocketError, errorCode, rethrow } from './errors.js';
import { release, waitAnyOnce } from './io.js';

export type { CloseFrame, Connection, Message } from 'switchboard:call/websocket@0.2.0';

/** The end of a connection, as {@link receiveBlocking} reports it. */
export interface Closed {
  tag: 'closed';
  val: CloseFrame;
}

/** A text message. */
export function text(value: string): Message {
  return { tag: 'text', val: value };
}

/** A binary message. */
export function binary(value: Uint8Array): Message {
  return { tag: 'binary', val: value };
}

/** Queues `message`; `false` when the send queue is full (wait on `writable`). */
export function trySend(connection: Connection, message: Message): boolean {
  try {
    connection.send(message);
    return true;
  } catch (thrown) {
    const code = errorCode(thrown);
    if (code.tag === 'would-block') return false;
    throw new WebSocketError(code);
  }
}

/** Sends `message`, waiting while the send queue is full. Throws {@link WebSocketError}. */
export function sendBlocking(connection: Connection, message: Message): void {
  while (!trySend(connection, message)) waitAnyOnce([connection.writable()]);
}

/**
 * The next buffered message, `undefined` when none is buffered, or {@link Closed} once
 * the connection has ended. Never blocks; throws {@link WebSocketError} on other failures.
 */
export function receive(connection: Connection): Message | Closed | undefined {
  try {
    return connection.receive();
  } catch (thrown) {
    const code = errorCode(thrown);
    if (code.tag === 'closed') return code;
    throw new WebSocketError(code);
  }
}

/** The next message, waiting for one, or {@link Closed} once the connection has ended. */
export function receiveBlocking(connection: Connection): Message | Closed {
  for (;;) {
    const next = receive(connection);
    if (next !== undefined) return next;
    waitAnyOnce([connection.subscribe()]);
  }
}

/** Options of {@link connect}, all optional. */
export interface ConnectOptions {
  /** Handshake headers. Secret headers the host injects for the target replace these. */
  headers?: Record<string, string> | Array<[string, string]>;
  /** Subprotocols to offer, most preferred first. */
  subprotocols?: string[];
  /** Deadline for DNS, TCP, TLS and the upgrade together, ms (the host caps it). */
  timeoutMs?: number;
  /** The leg this connection is, for the host's "which side failed" (default `outbound`). */
  leg?: string;
}

/** Starts opening `url`; poll the returned future's `subscribe()` with other work. */
export function beginConnect(url: string, options: ConnectOptions = {}): FutureConnection {
  const headers = Array.isArray(options.headers) ? options.headers : Object.entries(options.headers ?? {});
  return rethrow(() =>
    startConnect(url, {
      headers,
      subprotocols: options.subprotocols ?? [],
      timeout: options.timeoutMs === undefined ? undefined : BigInt(Math.round(options.timeoutMs * 1_000_000)),
      leg: options.leg,
    }),
  );
}

/** Waits for a handshake begun with {@link beginConnect}; releases the future. */
export function finishConnect(future: FutureConnection): Connection {
  try {
    for (;;) {
      const outcome = future.get();
      if (outcome !== undefined) {
        if (outcome.tag === 'ok') return outcome.val;
        throw new WebSocketError(outcome.val);
      }
      waitAnyOnce([future.subscribe()]);
    }
  } finally {
    release(future);
  }
}

/** Opens `url` (`wss://` or `ws://`) and waits for the handshake. Throws {@link WebSocketError}. */
export function connect(url: string, options: ConnectOptions = {}): Connection {
  return finishConnect(beginConnect(url, options));
}

/**
 * The code to pass a close on with: 1005 (no code), 1006 (no close frame) and 1015 (TLS)
 * describe a close but may not be sent in one, so they become 1000 and 1011.
 */
export function forwardableCode(frame: CloseFrame): number {
  switch (frame.code) {
    case 1005:
      return 1000;
    case 1006:
    case 1015:
      return 1011;
    default:
      return frame.code;
  }
}
