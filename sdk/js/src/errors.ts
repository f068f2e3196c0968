/**
 * Errors of the WebSocket imports as JavaScript exceptions.
 *
 * The world's functions that return `result<_, error-code>` throw when they fail; the
 * thrown value carries the WIT `error-code` as its `payload`. {@link WebSocketError} wraps
 * it with a readable message, and {@link errorCode} gets it back from anything caught.
 */
import type { CloseFrame, ErrorCode } from 'switchboard:call/websocket@0.2.0';

/** A failed WebSocket operation; `code` is the host's `error-code`. */
export class WebSocketError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode) {
    super(describe(code));
    this.name = 'WebSocketError';
    this.code = code;
  }

  /** The close frame when the connection had ended, else `undefined`. */
  get closed(): CloseFrame | undefined {
    return this.code.tag === 'closed' ? this.code.val : undefined;
  }
}

/** The `error-code` a WebSocket import threw, or `internal-error` for anything else. */
export function errorCode(thrown: unknown): ErrorCode {
  if (thrown instanceof WebSocketError) return thrown.code;
  const payload = (thrown as { payload?: unknown } | null)?.payload;
  if (payload && typeof payload === 'object' && 'tag' in payload) return payload as ErrorCode;
  return { tag: 'internal-error', val: String(thrown) };
}

/** Runs `operation`, turning what a WebSocket import throws into a {@link WebSocketError}. */
export function rethrow<T>(operation: () => T): T {
  try {
    return operation();
  } catch (thrown) {
    if (thrown instanceof WebSocketError) throw thrown;
    throw new WebSocketError(errorCode(thrown));
  }
}

/** One line for an operator: `denied`, `closed (1000 bye)`, `tls-error: unknown issuer`. */
export function describe(code: ErrorCode): string {
  switch (code.tag) {
    case 'invalid-url':
    case 'dns-error':
    case 'tls-error':
      return `${code.tag}: ${code.val}`;
    case 'internal-error':
      return code.val === undefined ? code.tag : `${code.tag}: ${code.val}`;
    case 'closed':
      return `closed (${code.val.code}${code.val.reason ? ` ${code.val.reason}` : ''})`;
    case 'handshake-rejected':
      return `handshake-rejected: HTTP ${code.val.status}${code.val.bodyExcerpt ? ` ${code.val.bodyExcerpt}` : ''}`;
    default:
      return code.tag;
  }
}
