/**
 * The Switchboard guest SDK for TypeScript: helpers over the `switchboard:call/call-handler`
 * world, in the spirit of the Rust `switchboard-guest` crate.
 *
 * A component's entry module exports the `handler` interface:
 *
 * ```ts
 * import { receiveBlocking, sendBlocking, type Connection } from '@switchboard/guest';
 * import type { RequestInfo } from 'switchboard:call/handler@0.2.0';
 * export const handler = {
 *   handle(request: RequestInfo, inbound: Connection) { ... },
 * };
 * ```
 *
 * and `switchboard-componentize` bundles it into a `wasm32-wasip2` component.
 */
export * from './errors.js';
export * from './http.js';
export * from './io.js';
export * from './settings.js';
export * from './timeline.js';
export * from './websocket.js';
export type { RequestInfo } from 'switchboard:call/handler@0.2.0';
