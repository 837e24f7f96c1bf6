// The rendezvous wire protocol (docs/contracts.md): newline-delimited JSON, one connection per rank
// or agent. Shared by the server (src/launch) and mirrored by patches/moe_run_bootstrap.py.

/** Longest line accepted; anything longer closes the connection. */
export const MAX_LINE_BYTES = 64 * 1024;

export type RankState = 'starting' | 'loading' | 'waiting' | 'profiling' | 'exporting' | 'done' | 'failed';

export type ClientMessage =
  | { type: 'hello'; token: string; role: 'rank'; rank: number; pid: number; host: string }
  | { type: 'hello'; token: string; role: 'agent'; node: number; ranks: number[]; pid: number; host: string }
  | { type: 'ping'; t0: string }
  | { type: 'clock'; offset_ns: string; rtt_ns: string }
  | { type: 'status'; state: RankState; step?: number; steps?: number; detail?: string }
  | { type: 'barrier'; name: string };

/**
 * Multi-node (src/launch/agent.ts): what an agent reports about its node's ranks, which node 0 cannot
 * see. Times are on the reference clock (the agent adds its measured offset).
 */
export type AgentMessage =
  | { type: 'rank_started'; rank: number; pid: number; t_ns: string }
  | {
    type: 'rank_ended';
    rank: number;
    t_ns: string;
    exit_code: number | null;
    signal: string | null;
    status: 'ok' | 'failed' | 'stopped' | 'not-started';
    reason?: string;
    stderr_tail?: string[];
  };

export type ServerMessage =
  /** to an agent also: the run directory's name, torch.distributed's port and the artifact port on node 0 */
  | { type: 'welcome'; world_size: number; run?: string; master_port?: number; artifacts_port?: number }
  | { type: 'pong'; t0: string; t1: string; t2: string }
  | { type: 'release'; name: string; t_ns: string }
  | { type: 'abort'; reason: string }
  | { type: 'error'; reason: string };
