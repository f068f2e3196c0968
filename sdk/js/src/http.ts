/**
 * HTTP requests over `wasi:http/outgoing-handler`, blocking in the same way as the socket
 * helpers (the wait is in `wasi:io/poll`): an LLM's completion, a REST call.
 *
 * The host applies the egress allowlist and the secret headers as for WebSockets, and
 * never follows a redirect: a 3xx comes back as it is.
 */
import { handle } from 'wasi:http/outgoing-handler@0.2.12';
import { Fields, OutgoingBody, OutgoingRequest, RequestOptions, type ErrorCode as HttpErrorCode, type Method } from 'wasi:http/types@0.2.12';
import { release, waitAnyOnce } from './io.js';

export type { ErrorCode as HttpErrorCode } from 'wasi:http/types@0.2.12';

/** The request header naming the leg the host reports a request on; removed before sending. */
export const LEG_HEADER = 'switchboard-leg';

/** A failed request; `code` is the `wasi:http` `error-code` (`HTTP-request-denied`, ...). */
export class HttpError extends Error {
  readonly code: HttpErrorCode;

  constructor(code: HttpErrorCode) {
    // Some payloads are bigints (body sizes), which JSON cannot write as they are.
    const detail = 'val' in code && code.val !== undefined ? ` ${JSON.stringify(code.val, (_key, value) => (typeof value === 'bigint' ? value.toString() : value))}` : '';
    super(`http: ${code.tag}${detail}`);
    this.name = 'HttpError';
    this.code = code;
  }
}

/** What to send; everything but the URL is optional. */
export interface RequestInit {
  /** `GET` unless given (`POST` when there is a body). */
  method?: string;
  /** Request headers. Secret headers the host injects for the target replace these. */
  headers?: Record<string, string> | Array<[string, string]>;
  /** The body: text is sent as UTF-8. */
  body?: string | Uint8Array;
  /** The leg the host reports this request on (see `legs`). */
  leg?: string;
  /** Deadline for DNS, TCP and TLS, ms (the host caps it). */
  connectTimeoutMs?: number;
  /** Deadline from sending to the response head, ms. */
  firstByteTimeoutMs?: number;
  /** Longest silence inside the response body, ms. */
  betweenBytesTimeoutMs?: number;
  /** Most body bytes read; more fails the request (default 16 MiB). */
  maxBodyBytes?: number;
}

/** A whole response. */
export interface Response {
  status: number;
  /** Header names in lower case, values as text. */
  headers: Array<[string, string]>;
  body: Uint8Array;
  /** The first value of header `name`. */
  header(name: string): string | undefined;
  /** The body as UTF-8 text. */
  text(): string;
  /** The body parsed as JSON. */
  json(): unknown;
}

// The engine (StarlingMonkey) provides the WHATWG encoders; ES2022 declares neither.
declare const TextEncoder: { new (): { encode(text: string): Uint8Array } };
declare const TextDecoder: { new (): { decode(bytes: Uint8Array): string } };

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function method(name: string): Method {
  const known = ['get', 'head', 'post', 'put', 'delete', 'connect', 'options', 'trace', 'patch'];
  const lower = name.toLowerCase();
  return (known.includes(lower) ? { tag: lower } : { tag: 'other', val: name }) as Method;
}

function httpErrorOf(thrown: unknown): HttpErrorCode {
  const payload = (thrown as { payload?: unknown } | null)?.payload;
  if (payload && typeof payload === 'object' && 'tag' in payload) return payload as HttpErrorCode;
  return { tag: 'internal-error', val: String(thrown) };
}

function nanoseconds(ms: number | undefined): bigint | undefined {
  return ms === undefined ? undefined : BigInt(Math.round(ms * 1_000_000));
}

/** Sends a request and reads the whole response. Throws {@link HttpError}. */
export function request(url: string, init: RequestInit = {}): Response {
  const parsed = /^(https?):\/\/([^/?#]+)([^#]*)/i.exec(url);
  if (parsed === null) throw new HttpError({ tag: 'HTTP-request-URI-invalid' });
  const body = typeof init.body === 'string' ? encoder.encode(init.body) : init.body;
  const headers = Array.isArray(init.headers) ? [...init.headers] : Object.entries(init.headers ?? {});
  if (init.leg !== undefined) headers.push([LEG_HEADER, init.leg]);
  let future: import('wasi:http/types@0.2.12').FutureIncomingResponse;
  let outgoingBody: OutgoingBody;
  try {
    // A forbidden header, an invalid authority or a refused request all throw here.
    const outgoing = new OutgoingRequest(Fields.fromList(headers.map(([name, value]) => [name.toLowerCase(), encoder.encode(value)])));
    outgoing.setMethod(method(init.method ?? (body === undefined ? 'GET' : 'POST')));
    outgoing.setScheme(parsed[1].toLowerCase() === 'https' ? { tag: 'HTTPS' } : { tag: 'HTTP' });
    outgoing.setAuthority(parsed[2]);
    outgoing.setPathWithQuery(parsed[3] === '' ? '/' : parsed[3]);
    outgoingBody = outgoing.body();
    const options = new RequestOptions();
    options.setConnectTimeout(nanoseconds(init.connectTimeoutMs));
    options.setFirstByteTimeout(nanoseconds(init.firstByteTimeoutMs));
    options.setBetweenBytesTimeout(nanoseconds(init.betweenBytesTimeoutMs));
    future = handle(outgoing, options);
  } catch (thrown) {
    throw thrown instanceof HttpError ? thrown : new HttpError(httpErrorOf(thrown));
  }
  try {
    // A body that cannot be written means the request failed: the future says why.
    let written = true;
    try {
      writeBody(outgoingBody, body);
    } catch {
      written = false;
    }
    for (;;) {
      const outcome = future.get();
      if (outcome !== undefined) {
        if (outcome.tag === 'err') throw new HttpError({ tag: 'internal-error', val: 'response taken twice' });
        if (outcome.val.tag === 'err') throw new HttpError(outcome.val.val);
        if (!written) throw new HttpError({ tag: 'HTTP-request-body-size', val: undefined });
        return readResponse(outcome.val.val, init.maxBodyBytes ?? 16 << 20);
      }
      waitAnyOnce([future.subscribe()]);
    }
  } finally {
    release(future);
  }
}

function writeBody(outgoingBody: OutgoingBody, body: Uint8Array | undefined): void {
  const stream = outgoingBody.write();
  try {
    // blocking-write-and-flush takes at most 4096 bytes a call.
    for (let offset = 0; body !== undefined && offset < body.length; offset += 4096) {
      stream.blockingWriteAndFlush(body.subarray(offset, offset + 4096));
    }
  } finally {
    release(stream);
  }
  OutgoingBody.finish(outgoingBody, undefined);
}

function readResponse(incoming: import('wasi:http/types@0.2.12').IncomingResponse, limit: number): Response {
  const status = incoming.status();
  const fields = incoming.headers();
  const headers: Array<[string, string]> = fields.entries().map(([name, value]) => [name.toLowerCase(), decoder.decode(value)]);
  release(fields);
  const incomingBody = incoming.consume();
  const stream = incomingBody.stream();
  const chunks: Uint8Array[] = [];
  let length = 0;
  try {
    for (;;) {
      let chunk: Uint8Array;
      try {
        chunk = stream.blockingRead(65536n);
      } catch (thrown) {
        const payload = (thrown as { payload?: { tag?: string } } | null)?.payload;
        if (payload?.tag === 'closed') break;
        throw new HttpError({ tag: 'HTTP-response-incomplete' });
      }
      length += chunk.length;
      if (length > limit) throw new HttpError({ tag: 'HTTP-response-body-size', val: BigInt(length) });
      chunks.push(chunk);
    }
  } finally {
    release(stream);
    release(incomingBody);
    release(incoming);
  }
  const body = new Uint8Array(length);
  let at = 0;
  for (const chunk of chunks) {
    body.set(chunk, at);
    at += chunk.length;
  }
  return {
    status,
    headers,
    body,
    header: (name) => headers.find(([n]) => n === name.toLowerCase())?.[1],
    text: () => decoder.decode(body),
    json: () => JSON.parse(decoder.decode(body)),
  };
}
