// Config loading: YAML file → --set overrides → --gpus / --name → the schema → a RunConfig.
// Everything is applied to the parsed YAML document (not to a plain object) so that a schema error
// can still name the file and line of the offending key.
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { Document, LineCounter, isMap, parseDocument } from 'yaml';
import { z } from 'zod';
import { UserError } from '../errors.js';
import { runConfigSchema, type RunConfig } from './schema.js';
import { parseOverride } from './overrides.js';
import { explainIssues, type CommandLineValue } from './explain.js';

export type { RunConfig } from './schema.js';
export { runConfigSchema } from './schema.js';

export interface LoadConfigOptions {
  configPath?: string;
  /** `key.path=value` strings, applied in order */
  sets?: string[];
  gpus?: number;
  name?: string;
}

/**
 * Loads and validates a run configuration. `source` is the config file's absolute path (or
 * "(command line)" when there is none), for the manifest. Throws UserError with one line naming
 * the file, line, key path, what was expected and what was found.
 */
export async function loadConfig(opts: LoadConfigOptions): Promise<{ config: RunConfig; source: string }> {
  const lines = new LineCounter();
  const doc = opts.configPath === undefined ? new Document({}) : await readYaml(opts.configPath, lines);
  const commandLine: CommandLineValue[] = [];

  const apply = (path: string[], value: unknown, text: string) => {
    try {
      doc.setIn(path, doc.createNode(value));
    } catch {
      // setIn refuses to descend into a scalar (e.g. --set gpus.x=1); say which key is in the way.
      throw new UserError(`${text}: ${path.join('.')}: cannot set a key inside a value that is not a mapping`);
    }
    commandLine.push({ path, text });
  };
  for (const text of opts.sets ?? []) {
    const o = parseOverride(text);
    apply(o.path, o.value, `--set ${text}`);
  }
  if (opts.gpus !== undefined) apply(['gpus'], opts.gpus, `--gpus ${opts.gpus}`);
  if (opts.name !== undefined) apply(['name'], opts.name, `--name ${opts.name}`);

  const data: unknown = doc.toJS() ?? {};
  const result = runConfigSchema.safeParse(data);
  if (!result.success) {
    throw new UserError(explainIssues(result.error.issues, data, runConfigSchema, {
      file: opts.configPath, doc, lines, commandLine,
    }));
  }
  return {
    config: result.data,
    source: opts.configPath === undefined ? '(command line)' : resolve(opts.configPath),
  };
}

async function readYaml(path: string, lines: LineCounter): Promise<Document.Parsed | Document> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory' : code === 'EACCES' ? 'permission denied' : String(code);
    throw new UserError(`${path}: cannot read the config file (${why})`);
  }
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false });
  const err = doc.errors[0];
  if (err) {
    const pos = lines.linePos(err.pos[0]);
    const message = err.message.split('\n')[0].replace(/ at line \d+, column \d+:?$/, '');
    throw new UserError(`${path}:${pos.line}:${pos.col}: invalid YAML: ${message}`);
  }
  if (doc.contents !== null && !isMap(doc.contents)) {
    throw new UserError(`${path}:1: expected a mapping of sections (workload:, profile:, ...), got ${typeof doc.toJS()}`);
  }
  // An empty file is an empty mapping, so that --set can still add to it.
  if (doc.contents === null) return new Document({});
  return doc;
}

/** The JSON Schema of a config file, for editors (`moe-run schema`). */
export function configJsonSchema(): unknown {
  return z.toJSONSchema(runConfigSchema, { io: 'input' });
}
