/**
 * The component's non-secret settings (`[components.<name>.settings]` in the host's
 * configuration), read through `wasi:config/store`. Secrets never appear here: the host
 * adds them to outbound requests itself.
 */
import { get, getAll } from 'wasi:config/store@0.2.0-rc.1';

/** The setting `key`, or `undefined` when it is unset or unreadable. */
export function setting(key: string): string | undefined {
  try {
    return get(key);
  } catch {
    return undefined;
  }
}

/** Every setting whose key starts with `prefix`, keyed by the rest of the key. */
export function settingsWithPrefix(prefix: string): Array<[string, string]> {
  let all: Array<[string, string]>;
  try {
    all = getAll();
  } catch {
    return [];
  }
  return all.filter(([key]) => key.startsWith(prefix)).map(([key, value]) => [key.slice(prefix.length), value]);
}
