// Turns a schema violation into the one line a user needs: where it is (file:line, or the --set
// that put it there), the key path, what was expected and what was found, and for a misspelt key
// the closest allowed one.
import { isMap, isSeq, type Document, type LineCounter, type Node } from 'yaml';
import type { z } from 'zod';

/** Where a value came from when it was not in the file (--set, --gpus, --name). */
export interface CommandLineValue {
  path: string[];
  text: string;
}

export interface ConfigSource {
  /** the file as the user named it; undefined when there is no file */
  file?: string;
  doc?: Document;
  lines?: LineCounter;
  commandLine: CommandLineValue[];
}

type Issue = z.core.$ZodIssue;

/** The first problem by position in the file (the one a reader meets first), as one line. */
export function explainIssues(issues: readonly Issue[], data: unknown, schema: z.ZodType, src: ConfigSource): string {
  const described = issues.map((issue) => describeIssue(issue, data, schema, src));
  described.sort((a, b) => a.order - b.order);
  const more = described.length > 1 ? ` (and ${described.length - 1} more problem${described.length > 2 ? 's' : ''})` : '';
  return described[0].text + more;
}

function describeIssue(issue: Issue, data: unknown, schema: z.ZodType, src: ConfigSource): { order: number; text: string } {
  let path = issue.path.map(String);
  let what: string;
  const value = valueAt(data, path);
  switch (issue.code) {
    case 'unrecognized_keys': {
      // Name the (first) unknown key itself, so the line number points at it.
      const key = issue.keys[0];
      const allowed = allowedKeys(schema, issue.path, data);
      path = [...path, key];
      what = `unknown key${suggest(key, allowed)}`;
      break;
    }
    case 'invalid_type':
      what = value === undefined
        ? `required key missing (expected ${issue.expected})`
        : `expected ${issue.expected}, got ${show(value)}`;
      break;
    case 'invalid_value':
      what = `expected ${issue.values.map((v) => JSON.stringify(v)).join(' | ')}, got ${show(value)}`;
      break;
    case 'invalid_union':
      what = `expected ${unionExpected(issue)}, got ${show(value)}`;
      break;
    default:
      what = `${lowerFirst(issue.message)}, got ${show(value)}`;
  }
  const { where, order } = locate(path, src);
  return { order, text: `${where}: ${path.join('.') || '(top level)'}: ${what}` };
}

/** What a union accepts: the discriminator's values, else the types of its members. */
function unionExpected(issue: Extract<Issue, { code: 'invalid_union' }>): string {
  const options = (issue as { options?: unknown[] }).options;
  if (options) return options.map((v) => JSON.stringify(v)).join(' | ');
  const types = issue.errors.flat().flatMap((e) => (e.code === 'invalid_type' && e.path.length === 0 ? [e.expected] : []));
  return types.length > 0 ? [...new Set(types)].join(' | ') : 'one of the allowed forms';
}

/** file:line of the deepest key of `path` present in the file, or the command-line flag that set it. */
function locate(path: string[], src: ConfigSource): { where: string; order: number } {
  const flag = src.commandLine.find((c) => startsWith(path, c.path) || startsWith(c.path, path));
  if (flag) return { where: flag.text, order: Number.MAX_SAFE_INTEGER };
  if (src.file === undefined || !src.doc || !src.lines) return { where: src.file ?? 'no config file (--config)', order: 0 };
  const file = src.file;
  let node: unknown = src.doc.contents;
  let offset = (node as Node | null)?.range?.[0] ?? 0;
  for (const part of path) {
    if (isMap(node)) {
      const pair = node.items.find((p) => keyText(p.key) === part);
      if (!pair) break;
      offset = (pair.key as Node | null)?.range?.[0] ?? offset;
      node = pair.value;
    } else if (isSeq(node)) {
      const item = node.items[Number(part)] as Node | undefined;
      if (!item) break;
      offset = item.range?.[0] ?? offset;
      node = item;
    } else break;
  }
  return { where: `${file}:${src.lines.linePos(offset).line}`, order: offset };
}

function keyText(key: unknown): string {
  return String(key !== null && typeof key === 'object' && 'value' in key ? (key as { value: unknown }).value : key);
}

function startsWith(path: string[], prefix: string[]): boolean {
  return prefix.length <= path.length && prefix.every((p, i) => p === path[i]);
}

function valueAt(data: unknown, path: string[]): unknown {
  let v = data;
  for (const part of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<string, unknown>)[part];
  }
  return v;
}

function show(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return `a list ${truncate(JSON.stringify(value))}`;
  if (typeof value === 'object') return 'a mapping';
  return `${truncate(JSON.stringify(value))} (${typeof value})`;
}

function truncate(s: string): string {
  return s.length > 40 ? `${s.slice(0, 37)}...` : s;
}

function lowerFirst(s: string): string {
  return s.charAt(0).toLowerCase() + s.slice(1);
}

/** The keys the schema allows at `path`, following the data through unions (by their discriminator). */
export function allowedKeys(schema: z.ZodType, path: readonly PropertyKey[], data: unknown): string[] {
  let s: z.ZodType | undefined = unwrap(schema, valueAt(data, []));
  let v: unknown = data;
  for (const part of path) {
    v = v !== null && typeof v === 'object' ? (v as Record<string, unknown>)[String(part)] : undefined;
    const def = s?._zod.def as { type: string; shape?: Record<string, z.ZodType>; element?: z.ZodType; valueType?: z.ZodType } | undefined;
    if (def?.type === 'object') s = def.shape?.[String(part)];
    else if (def?.type === 'array') s = def.element;
    else if (def?.type === 'record') s = def.valueType;
    else return [];
    s = s && unwrap(s, v);
  }
  const def = s?._zod.def as { type: string; shape?: Record<string, unknown> } | undefined;
  return def?.type === 'object' && def.shape ? Object.keys(def.shape) : [];
}

/** Sees through default/optional/nullable, and picks a discriminated union's member by the data. */
function unwrap(schema: z.ZodType, value: unknown): z.ZodType {
  let s = schema;
  for (;;) {
    const def = s._zod.def as { type: string; innerType?: z.ZodType; options?: z.ZodType[]; discriminator?: string };
    if ((def.type === 'default' || def.type === 'optional' || def.type === 'nullable' || def.type === 'prefault') && def.innerType) {
      s = def.innerType;
    } else if (def.type === 'union' && def.discriminator && def.options) {
      const tag = value !== null && typeof value === 'object' ? (value as Record<string, unknown>)[def.discriminator] : undefined;
      const match = def.options.find((o) => literalOf(o, def.discriminator!) === tag);
      if (!match) return s;
      s = match;
    } else return s;
  }
}

function literalOf(option: z.ZodType, key: string): unknown {
  const shape = (option._zod.def as { shape?: Record<string, z.ZodType> }).shape;
  const values = (shape?.[key]?._zod.def as { values?: unknown[] } | undefined)?.values;
  return values?.[0];
}

/** ` (did you mean "x"?)` for the closest allowed key, else the list of allowed keys. */
export function suggest(key: string, allowed: string[]): string {
  if (allowed.length === 0) return '';
  const scored = allowed.map((a) => ({ a, d: editDistance(key.toLowerCase(), a.toLowerCase()) })).sort((x, y) => x.d - y.d);
  const best = scored[0];
  if (best.d <= Math.max(2, Math.floor(key.length / 3))) return ` (did you mean "${best.a}"?)`;
  return ` (allowed: ${allowed.join(', ')})`;
}

/** Levenshtein distance, one row at a time. */
export function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[b.length];
}
