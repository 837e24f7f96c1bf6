// `--set key.path=value` overrides. The value is parsed as YAML, so `--set a.b=0.1` is a number,
// `=true` a boolean, `=[1,2]` a list and `=cpu` a string, exactly as if it were written in the file.
import { parse } from 'yaml';
import { UserError } from '../errors.js';

export interface Override {
  /** as the user wrote it, for error messages */
  text: string;
  path: string[];
  value: unknown;
}

export function parseOverride(text: string): Override {
  const eq = text.indexOf('=');
  const key = eq < 0 ? '' : text.slice(0, eq).trim();
  const path = key.split('.');
  if (eq < 0 || path.some((part) => part === '')) {
    throw new UserError(`--set ${text}: expected key.path=value, e.g. --set profile.record_shapes=false`);
  }
  const raw = text.slice(eq + 1);
  let value: unknown;
  try {
    // An empty value means the empty string, not YAML's null: `--set env.FOO=` clears FOO.
    value = raw.trim() === '' ? '' : parse(raw);
  } catch (err) {
    throw new UserError(`--set ${text}: the value is not valid YAML (${firstLine(err)})`);
  }
  return { text, path, value };
}

function firstLine(err: unknown): string {
  return String(err instanceof Error ? err.message : err).split('\n')[0];
}
