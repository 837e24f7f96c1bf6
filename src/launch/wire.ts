// Reading the rendezvous wire protocol (docs/contracts.md "Wire protocol"): bytes → lines → validated
// messages. Everything here is pure and synchronous so that it can be fuzzed without sockets; the server
// only decides what to do with a message or a reason to reject.
import { z } from 'zod';
import { MAX_LINE_BYTES, type AgentMessage, type ClientMessage, type ServerMessage } from './protocol.js';

/** Anything a rank or an agent may send (agent messages are refused from ranks by the server). */
export type IncomingMessage = ClientMessage | AgentMessage;
export type ParseResult = { ok: true; message: IncomingMessage } | { ok: false; reason: string };

// Epoch times exceed 2^53, so they travel as decimal strings; offsets may be negative.
const nsString = z.string().regex(/^\d{1,30}$/, 'expected a decimal string of nanoseconds');
const signedNsString = z.string().regex(/^-?\d{1,30}$/, 'expected a decimal string of nanoseconds');
const rankNumber = z.number().int().min(0).max(1_000_000);
const pid = z.number().int().min(0).max(2 ** 31);
const host = z.string().max(255);
// Generous but bounded: a token longer than this is not one of ours (slurm.ts accepts up to 256).
const token = z.string().max(1024);

const hello = z.discriminatedUnion('role', [
  z.object({ type: z.literal('hello'), token, role: z.literal('rank'), rank: rankNumber, pid, host }),
  z.object({
    type: z.literal('hello'), token, role: z.literal('agent'), node: rankNumber,
    ranks: z.array(rankNumber).min(1).max(65_536), pid, host,
  }),
]);

// Unknown extra fields are dropped rather than refused, so a newer client can add some.
const messages: Record<IncomingMessage['type'], z.ZodType<IncomingMessage>> = {
  hello,
  ping: z.object({ type: z.literal('ping'), t0: nsString }),
  // A stepped or coarse client clock can make a round trip look negative: recorded, not refused.
  clock: z.object({ type: z.literal('clock'), offset_ns: signedNsString, rtt_ns: signedNsString }),
  status: z.object({
    type: z.literal('status'),
    state: z.enum(['starting', 'loading', 'waiting', 'profiling', 'exporting', 'done', 'failed']),
    step: z.number().int().min(0).optional(),
    steps: z.number().int().min(0).optional(),
    detail: z.string().max(1000).optional(),
  }),
  barrier: z.object({ type: z.literal('barrier'), name: z.string().regex(/^[\w.-]{1,64}$/, 'expected a name of letters, digits, ".", "_", "-"') }),
  rank_started: z.object({ type: z.literal('rank_started'), rank: rankNumber, pid, t_ns: nsString }),
  rank_ended: z.object({
    type: z.literal('rank_ended'),
    rank: rankNumber,
    t_ns: nsString,
    exit_code: z.number().int().nullable(),
    signal: z.string().max(32).nullable(),
    status: z.enum(['ok', 'failed', 'stopped', 'not-started']),
    reason: z.string().max(1000).optional(),
    stderr_tail: z.array(z.string().max(4096)).max(100).optional(),
  }),
};

/** One line (without its newline) → a validated client message, or why it is not one. */
export function parseClientMessage(line: string): ParseResult {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return { ok: false, reason: 'not valid JSON' };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { ok: false, reason: 'not a JSON object' };
  const type = (value as { type?: unknown }).type;
  if (typeof type !== 'string') return { ok: false, reason: 'no "type" field' };
  const schema = Object.hasOwn(messages, type) ? messages[type as IncomingMessage['type']] : undefined;
  if (schema === undefined) return { ok: false, reason: `unknown message type ${JSON.stringify(type.slice(0, 40))}` };
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue.path.length > 0 ? issue.path.join('.') : type;
    return { ok: false, reason: `invalid ${type} message: ${where}: ${issue.message}` };
  }
  return { ok: true, message: parsed.data };
}

export function encodeMessage(message: ServerMessage | IncomingMessage): string {
  return JSON.stringify(message) + '\n';
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Splits a byte stream into newline-terminated lines, never holding more than `maxLineBytes` of a line
 * that has not ended: a peer that streams without newlines is cut off at the bound, not buffered.
 */
export class LineSplitter {
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  constructor(private readonly maxLineBytes = MAX_LINE_BYTES) {}

  /** The complete lines in `chunk` (decoded), or an error reason once the stream broke the rules. */
  push(chunk: Buffer): { lines: string[]; error?: string } {
    const lines: string[] = [];
    let start = 0;
    for (let nl = chunk.indexOf(0x0a, start); nl >= 0; nl = chunk.indexOf(0x0a, start)) {
      const piece = chunk.subarray(start, nl);
      start = nl + 1;
      if (this.pendingBytes + piece.length > this.maxLineBytes) return { lines, error: this.tooLong() };
      const bytes = this.pending.length > 0 ? Buffer.concat([...this.pending, piece]) : piece;
      this.pending = [];
      this.pendingBytes = 0;
      let line: string;
      try {
        line = utf8.decode(bytes);
      } catch {
        return { lines, error: 'line is not valid UTF-8' };
      }
      lines.push(line.endsWith('\r') ? line.slice(0, -1) : line);
    }
    const rest = chunk.subarray(start);
    if (this.pendingBytes + rest.length > this.maxLineBytes) return { lines, error: this.tooLong() };
    if (rest.length > 0) {
      this.pending.push(Buffer.from(rest));
      this.pendingBytes += rest.length;
    }
    return { lines };
  }

  private tooLong(): string {
    return `line longer than ${this.maxLineBytes} bytes`;
  }
}
