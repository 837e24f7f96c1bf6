// The facts a plan needs about this node (src/plan/types.ts NodeFacts), gathered once: the
// interpreter, the torch.distributed port, the run directory. Used by --dry-run and by the launcher.
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import type { RunConfig } from '../config/schema.js';
import { runDirName } from '../run-dir.js';
import { freePort } from './ports.js';
import { resolvePython } from './python.js';
import type { NodeFacts } from './types.js';

export interface FactsOptions {
  runDir: string;
  nnodes?: number;
  nodeRank?: number;
  /** address of node 0 (default: config.rendezvous.host) */
  masterAddr?: string;
  /** the port node 0 chose; default: workload.master_port, or a free one here */
  masterPort?: number;
  rendezvous?: NodeFacts['rendezvous'];
  /** this node's name (default: the OS hostname; under Slurm, its node name) */
  hostname?: string;
  /** the interpreter, when already resolved (default: resolvePython(config.python)) */
  python?: string;
}

export async function gatherFacts(config: RunConfig, opts: FactsOptions): Promise<NodeFacts> {
  const masterAddr = opts.masterAddr ?? config.rendezvous.host;
  const masterPort = opts.masterPort ?? (config.workload.master_port || await freePort(bindableHost(masterAddr)));
  return {
    hostname: opts.hostname ?? hostname(),
    nnodes: opts.nnodes ?? 1,
    nodeRank: opts.nodeRank ?? 0,
    ranksPerNode: config.gpus,
    masterAddr,
    masterPort,
    rendezvous: opts.rendezvous,
    runDir: resolve(opts.runDir),
    python: opts.python ?? (await resolvePython(config.python)).python,
  };
}

/** `--out DIR`, else `output.dir/<name>-<UTC stamp>`. */
export function defaultRunDir(config: RunConfig, outDir?: string, date = new Date()): string {
  return resolve(outDir ?? join(config.output.dir, runDirName(config.name, date)));
}

// A port is free per address; loopback names are the one case where this node can test it.
function bindableHost(addr: string): string | undefined {
  return addr === 'localhost' || addr.startsWith('127.') || addr === '::1' ? addr : undefined;
}
