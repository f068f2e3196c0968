/**
 * The call's timeline and its legs: markers, the names the call is known by, transcript
 * lines, and faults with the side they happened on.
 */
import { emit, identify as identifyCall, transcript as addTranscript, type Value } from 'switchboard:call/markers@0.2.0';
import { complete, declare, fault as reportFault, nameInbound } from 'switchboard:call/legs@0.2.0';

/** A marker attribute: numbers with a fraction are `number`, whole ones and bigints `integer`. */
export type Attribute = string | number | bigint | boolean;

function value(attribute: Attribute): Value {
  switch (typeof attribute) {
    case 'string':
      return { tag: 'text', val: attribute };
    case 'boolean':
      return { tag: 'flag', val: attribute };
    case 'bigint':
      return { tag: 'integer', val: attribute };
    default:
      return Number.isInteger(attribute) ? { tag: 'integer', val: BigInt(attribute) } : { tag: 'number', val: attribute };
  }
}

/** Records marker `name` with `attributes` on the call's timeline. */
export function mark(name: string, attributes: Record<string, Attribute> = {}): void {
  emit(
    name,
    Object.entries(attributes).map(([key, attribute]) => [key, value(attribute)]),
  );
}

/** Records a fault on `leg`: `recovered` degrades the call, `failed` fails it. */
export function fault(leg: string, impact: 'recovered' | 'failed', cause: string, detail: string): void {
  reportFault(leg, impact, cause, detail);
}

/** Names the inbound connection's leg (it is `caller` until then). */
export function nameInboundLeg(name: string): void {
  nameInbound(name);
}

/** Declares a leg that is not a connection, so its markers get a lane of their own. */
export function declareLeg(name: string): void {
  declare(name);
}

/** Says `leg` has done its part: its later abnormal end is not a fault. */
export function completeLeg(leg: string): void {
  complete(leg);
}

/** Records a name the call is known by elsewhere, e.g. `identify('call_sid', sid)`. */
export function identify(kind: string, name: string): void {
  identifyCall(kind, name);
}

/** Adds one line to the call's transcript. */
export function transcript(speaker: string, text: string, timing: { startMs?: number; endMs?: number; confidence?: number } = {}): void {
  addTranscript({
    speaker,
    text,
    startMs: timing.startMs === undefined ? undefined : BigInt(Math.round(timing.startMs)),
    endMs: timing.endMs === undefined ? undefined : BigInt(Math.round(timing.endMs)),
    confidence: timing.confidence,
  });
}
