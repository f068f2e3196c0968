/**
 * Waiting: on pollables (sockets, handshakes, timers) and on the clock.
 *
 * A component never blocks the host: it waits in `wasi:io/poll`, where the host runs
 * other calls until something is ready. Pollables are resources that belong to the
 * socket they came from; {@link release} them before the socket.
 */
import { poll, type Pollable } from 'wasi:io/poll@0.2.12';
import { now, subscribeDuration } from 'wasi:clocks/monotonic-clock@0.2.12';

/** Blocks until at least one of `pollables` is ready; returns the indices that are. */
export function waitAny(pollables: Pollable[]): number[] {
  return Array.from(poll(pollables));
}

/** Waits on each of `pollables` (built fresh for this wait) and releases them. */
export function waitAnyOnce(pollables: Pollable[]): number[] {
  try {
    return waitAny(pollables);
  } finally {
    for (const pollable of pollables) release(pollable);
  }
}

/** A pollable that becomes ready after `ms` milliseconds. */
export function timer(ms: number): Pollable {
  return subscribeDuration(BigInt(Math.max(0, Math.round(ms * 1_000_000))));
}

/** Sleeps for `ms` milliseconds (other calls run meanwhile). */
export function sleep(ms: number): void {
  waitAnyOnce([timer(ms)]);
}

/** Monotonic milliseconds, for measuring intervals. */
export function nowMs(): number {
  return Number(now() / 1_000_000n);
}

/** Drops a resource (a pollable, a socket) now instead of when it is garbage-collected. */
export function release(resource: Disposable | undefined): void {
  resource?.[Symbol.dispose]();
}
