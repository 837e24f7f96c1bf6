// What the plan stage hands to the launcher: everything needed to start each rank, decided up front
// so that `--dry-run` shows exactly what a real run would execute.

/** Facts about this node that the plan needs (the config says what to run, these say where). */
export interface NodeFacts {
  hostname: string;
  nnodes: number;
  nodeRank: number;
  /** ranks (GPUs) on every node; global ranks are contiguous per node */
  ranksPerNode: number;
  /** address of node 0 as the ranks reach it (torch.distributed and the rendezvous) */
  masterAddr: string;
  /** torch.distributed port on node 0, already chosen (free) */
  masterPort: number;
  /** rendezvous host:port; absent in --dry-run */
  rendezvous?: { host: string; port: number; token: string };
  /** absolute run directory */
  runDir: string;
  /** interpreter found by resolvePython (src/plan/python.ts); used when the config sets none */
  python?: string;
}

export interface RankPlan {
  rank: number;
  localRank: number;
  nodeRank: number;
  worldSize: number;
  /** "cuda:D" or "cpu" */
  device: string;
  /** program and arguments; argv[0] is the interpreter. Never passed through a shell. */
  argv: string[];
  /** variables added to the launcher's environment for this rank */
  env: Record<string, string>;
  cwd: string;
  rankDir: string;
  stdoutPath: string;
  stderrPath: string;
}

export interface RunPlan {
  nnodes: number;
  nodeRank: number;
  worldSize: number;
  masterAddr: string;
  masterPort: number;
  /** the ranks this node starts */
  ranks: RankPlan[];
}
