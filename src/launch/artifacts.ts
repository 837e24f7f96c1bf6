// Moving a node's results to node 0. Each agent, once its ranks have ended, sends its ranks' folders,
// its samples and its launcher log to node 0 as one tar stream over TCP; node 0 unpacks it into the one
// run directory. (With `output.shared: true` the agents write into the run directory in place and
// nothing is sent.)
//
// The stream comes from another machine, so node 0 trusts nothing in it: an archive may only hold
// regular files and folders under `rank-R/` for the sender's own ranks, `samples/` and `launcher.log`;
// an absolute path, a `..`, a link of either kind, a device, a FIFO, a damaged header or a stream that
// ends before the archive's end marker refuses the whole transfer with a reason naming the entry. It is
// unpacked into a staging folder first and moved into place only when complete, so a refused or broken
// transfer writes nothing into the run directory.
//
// Wire: the agent connects to node 0's artifact port and sends one line of JSON,
// `{"type":"artifacts","token":T,"node":N}`, then the tar bytes, then half-closes; node 0 answers one
// line, `{"ok":true,"files":n,"bytes":b}` or `{"ok":false,"reason":"…"}`, and closes.
import { createHash, timingSafeEqual } from 'node:crypto';
import { existsSync } from 'node:fs';
import { lstat, mkdir, readdir, rename, rm } from 'node:fs/promises';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { create as tarCreate, Unpack, type ReadEntry } from 'tar';
import { RunDir } from '../run-dir.js';

/** Longest first line of an artifact connection. */
const MAX_HEADER_BYTES = 4096;
/** A connection that has not sent its header line by then is closed. */
const HEADER_TIMEOUT_MS = 30_000;

export interface TransferResult {
  files: number;
  bytes: number;
}

/** Why node 0 refuses an archive. */
export class ArtifactError extends Error {
  override name = 'ArtifactError';
}

// ───────────────────────────── what an archive may hold ─────────────────────────────

const ALLOWED_TYPES = new Set(['File', 'OldFile', 'ContiguousFile', 'Directory']);

/**
 * Null if node N (owning `ranks`) may send this entry, else why not. Paths are checked as written in
 * the archive, before tar's own sanitising, so a hostile path is refused rather than quietly rewritten.
 */
export function checkArtifactEntry(path: string, type: string, ranks: readonly number[]): string | null {
  const shown = JSON.stringify(path);
  if (!ALLOWED_TYPES.has(type)) return `${shown} is a ${type}: only regular files and folders are accepted`;
  if (path.includes('\0') || path.includes('\\')) return `${shown} contains a NUL or a backslash`;
  if (path.startsWith('/') || /^[A-Za-z]:/.test(path)) return `${shown} is an absolute path`;
  const parts = path.replace(/^(\.\/)+/, '').replace(/\/$/, '').split('/');
  if (parts.some((p) => p === '..')) return `${shown} contains ".."`;
  if (parts.some((p) => p === '' || p === '.')) return `${shown} has an empty or "." component`;
  const top = parts[0];
  const rank = /^rank-(\d+)$/.exec(top);
  if (rank) {
    return ranks.includes(Number(rank[1])) ? null : `${shown}: rank ${rank[1]} does not belong to this node`;
  }
  if (top === 'samples') return null;
  if (top === 'launcher.log' && parts.length === 1 && type !== 'Directory') return null;
  return `${shown} is outside rank-R/, samples/ and launcher.log`;
}

// ───────────────────────────── node 0: unpacking ─────────────────────────────

/**
 * Unpacks node `node`'s archive from `input` into the run directory: `rank-R/…` in place,
 * `samples/…` into samples/node-N/, `launcher.log` as launcher-node-N.log. Rejects (ArtifactError)
 * without touching the run directory if any entry is refused or the archive is incomplete.
 */
export async function extractArtifacts(
  input: Readable,
  opts: { runDir: RunDir; node: number; ranks: readonly number[] },
): Promise<TransferResult> {
  const { runDir, node, ranks } = opts;
  const staging = join(runDir.root, `.incoming-node-${node}`);
  await rm(staging, { recursive: true, force: true });
  await mkdir(staging, { recursive: true });
  try {
    const result = await unpackInto(input, staging, ranks);
    await refuseOddFiles(staging);
    await moveInto(staging, runDir, node);
    return result;
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

function unpackInto(input: Readable, dir: string, ranks: readonly number[]): Promise<TransferResult> {
  return new Promise((resolvePromise, reject) => {
    let refused: string | null = null;
    let sawEnd = false;
    const result: TransferResult = { files: 0, bytes: 0 };
    const unpack = new Unpack({
      cwd: dir,
      strict: true,
      // as root, tar would give files the sender's uid/gid; they belong to whoever runs node 0
      preserveOwner: false,
      filter: (path: string, entry) => {
        const e = entry as ReadEntry;
        const why = checkArtifactEntry(path, e.type, ranks);
        if (why !== null) {
          refused ??= why;
          unpack.abort(new ArtifactError(why));
          return false;
        }
        if (e.type !== 'Directory') {
          result.files++;
          result.bytes += e.size ?? 0;
        }
        return true;
      },
    });
    let settled = false;
    const fail = (err: unknown) => {
      if (settled) return;
      settled = true;
      input.unpipe(unpack as unknown as NodeJS.WritableStream);
      input.resume(); // drain the rest so the sender is not left blocked
      const reason = refused ?? (err instanceof Error ? err.message : String(err));
      reject(new ArtifactError(`archive refused: ${reason}`));
    };
    // The parser emits 'eof' at the archive's end marker (two zero blocks): without it the sender
    // stopped part-way (it died, or the connection broke) even if every entry so far was whole.
    unpack.on('eof', () => { sawEnd = true; });
    unpack.on('error', fail);
    input.on('error', fail);
    unpack.on('close', () => {
      if (settled) return;
      if (!sawEnd) return fail(new Error('the stream ended before the end of the archive'));
      settled = true;
      resolvePromise(result);
    });
    input.pipe(unpack as unknown as NodeJS.WritableStream);
  });
}

/** After unpacking: nothing but files and folders (tar's own checks and the filter should ensure it). */
async function refuseOddFiles(dir: string): Promise<void> {
  for (const name of await readdir(dir)) {
    const p = join(dir, name);
    const st = await lstat(p);
    if (st.isDirectory()) await refuseOddFiles(p);
    else if (!st.isFile()) throw new ArtifactError(`archive refused: ${p} is not a regular file`);
  }
}

async function moveInto(staging: string, runDir: RunDir, node: number): Promise<void> {
  for (const name of await readdir(staging)) {
    const rank = /^rank-(\d+)$/.exec(name);
    const dest = rank ? runDir.rankDir(Number(rank[1]))
      : name === 'samples' ? runDir.nodeSamplesDir(node)
        : runDir.nodeLauncherLog(node);
    await mergeMove(join(staging, name), dest);
  }
}

/** rename(src, dest), merging into a folder that already exists (files replace files). */
async function mergeMove(src: string, dest: string): Promise<void> {
  const srcIsDir = (await lstat(src)).isDirectory();
  const destStat = await lstat(dest).catch(() => null);
  if (srcIsDir && destStat?.isDirectory()) {
    for (const name of await readdir(src)) await mergeMove(join(src, name), join(dest, name));
    return;
  }
  if (destStat) await rm(dest, { recursive: true, force: true });
  else await mkdir(join(dest, '..'), { recursive: true });
  await rename(src, dest);
}

// ───────────────────────────── node 0: the listener ─────────────────────────────

/**
 * Node 0's artifact listener: accepts one complete archive per expected node, each from a connection
 * that presents the run's token. `waitFor(node)` resolves once that node's archive is in place.
 */
export class ArtifactReceiver {
  private readonly server: Server;
  private readonly tokenDigest: Buffer;
  private readonly waiters = new Map<number, { promise: Promise<TransferResult>; resolve: (r: TransferResult) => void }>();
  private readonly busy = new Set<number>();
  private readonly lastError = new Map<number, string>();

  private constructor(
    private readonly opts: {
      runDir: RunDir;
      token: string;
      /** node → its global ranks */
      nodes: ReadonlyMap<number, readonly number[]>;
      log: (line: string) => void;
    },
  ) {
    this.tokenDigest = digest(opts.token);
    for (const node of opts.nodes.keys()) {
      let resolve!: (r: TransferResult) => void;
      const promise = new Promise<TransferResult>((r) => { resolve = r; });
      this.waiters.set(node, { promise, resolve });
    }
    // half-open: the sender ends its side when the archive is sent and still reads the answer
    this.server = createServer({ allowHalfOpen: true }, (socket) => this.accept(socket));
  }

  static async listen(opts: {
    runDir: RunDir;
    token: string;
    nodes: ReadonlyMap<number, readonly number[]>;
    bind: string;
    port?: number;
    log?: (line: string) => void;
  }): Promise<ArtifactReceiver> {
    const receiver = new ArtifactReceiver({ ...opts, log: opts.log ?? (() => {}) });
    await new Promise<void>((resolvePromise, reject) => {
      receiver.server.once('error', reject);
      receiver.server.listen({ host: opts.bind, port: opts.port ?? 0, exclusive: true }, () => {
        receiver.server.off('error', reject);
        resolvePromise();
      });
    });
    return receiver;
  }

  get port(): number {
    const a = this.server.address();
    return typeof a === 'object' && a ? a.port : 0;
  }

  /** Resolves when `node`'s archive is in place; rejects after `timeoutMs` naming the last failure. */
  waitFor(node: number, timeoutMs: number): Promise<TransferResult> {
    const w = this.waiters.get(node);
    if (!w) return Promise.reject(new Error(`node ${node} is not expected to send artifacts`));
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const last = this.lastError.get(node);
        reject(new ArtifactError(
          `node ${node} sent no complete artifacts within ${Math.round(timeoutMs / 1000)} s` + (last ? ` (last attempt: ${last})` : ''),
        ));
      }, timeoutMs);
    });
    return Promise.race([w.promise, timeout]).finally(() => clearTimeout(timer));
  }

  close(): Promise<void> {
    return new Promise((r) => this.server.close(() => r()));
  }

  private accept(socket: Socket): void {
    const peer = `${socket.remoteAddress}:${socket.remotePort}`;
    socket.on('error', () => {}); // a reset by the peer is reported through the transfer's outcome
    readHeaderLine(socket, MAX_HEADER_BYTES, HEADER_TIMEOUT_MS).then(
      async (line) => {
        const node = this.admit(line);
        this.busy.add(node);
        try {
          const result = await extractArtifacts(socket, {
            runDir: this.opts.runDir, node, ranks: this.opts.nodes.get(node)!,
          });
          this.lastError.delete(node);
          this.opts.log(`artifacts: node ${node}: ${result.files} files, ${result.bytes} bytes`);
          reply(socket, { ok: true, ...result });
          this.waiters.get(node)!.resolve(result);
        } catch (err) {
          const reason = (err as Error).message;
          this.lastError.set(node, reason);
          throw err;
        } finally {
          this.busy.delete(node);
        }
      },
    ).catch((err: unknown) => {
      const reason = err instanceof Error ? err.message : String(err);
      this.opts.log(`artifacts: connection from ${peer} refused: ${reason}`);
      reply(socket, { ok: false, reason });
    });
  }

  /** The node a header line admits, or an error saying why not. */
  private admit(line: string): number {
    let msg: unknown;
    try {
      msg = JSON.parse(line);
    } catch {
      throw new ArtifactError('the first line is not JSON');
    }
    const m = msg as { type?: unknown; token?: unknown; node?: unknown };
    if (typeof msg !== 'object' || msg === null || m.type !== 'artifacts' || typeof m.token !== 'string') {
      throw new ArtifactError('expected {"type":"artifacts","token":…,"node":…} first');
    }
    if (!timingSafeEqual(digest(m.token), this.tokenDigest)) throw new ArtifactError('wrong token');
    const node = m.node;
    if (typeof node !== 'number' || !this.opts.nodes.has(node)) throw new ArtifactError(`node ${String(node)} is not expected`);
    if (this.busy.has(node)) throw new ArtifactError(`node ${node} is already sending`);
    return node;
  }
}

/** Equal-length digests, so that the token comparison takes the same time whatever was sent. */
function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

function reply(socket: Socket, msg: object): void {
  if (socket.destroyed) return;
  socket.end(JSON.stringify(msg) + '\n');
  socket.resume(); // read (and drop) whatever the peer still sends, so its end arrives and the socket closes
  // a peer that never reads the answer must not keep the socket open
  setTimeout(() => socket.destroy(), 5000).unref();
}

/** The first line of `socket` (without the newline); the bytes after it are put back for the next reader. */
function readHeaderLine(socket: Socket, maxBytes: number, timeoutMs: number): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    let buf = Buffer.alloc(0);
    const done = (err: Error | null, line?: string, rest?: Buffer) => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.pause();
      if (rest && rest.length > 0) socket.unshift(rest);
      if (err) reject(err);
      else resolvePromise(line!);
    };
    const onData = (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      const nl = buf.indexOf(0x0a);
      if (nl >= 0 && nl <= maxBytes) done(null, buf.subarray(0, nl).toString('utf8'), buf.subarray(nl + 1));
      else if (nl > maxBytes || (nl < 0 && buf.length > maxBytes)) done(new ArtifactError(`first line longer than ${maxBytes} bytes`));
    };
    const onEnd = () => done(new ArtifactError('closed before the first line'));
    const timer = setTimeout(() => done(new ArtifactError(`no first line within ${timeoutMs / 1000} s`)), timeoutMs);
    socket.on('data', onData);
    socket.on('end', onEnd);
  });
}

// ───────────────────────────── agents: sending ─────────────────────────────

/**
 * Sends the ranks' folders, `samples/` and `launcher.log` found under the agent's local run directory
 * `root` to node 0, and resolves with node 0's count of what it unpacked. Symbolic links and other
 * non-regular files are left out (node 0 would refuse them).
 */
export async function sendArtifacts(opts: {
  host: string;
  port: number;
  token: string;
  node: number;
  root: string;
  ranks: readonly number[];
  timeoutMs?: number;
}): Promise<TransferResult> {
  const local = new RunDir(opts.root);
  // tar neither packs nor unpacks an archive without entries: an agent with nothing else sends at
  // least its (empty) samples folder, so that node 0 still hears "complete"
  await mkdir(local.samplesDir, { recursive: true });
  const entries = [...opts.ranks.map((r) => `rank-${r}`), 'samples', 'launcher.log']
    .filter((e) => existsSync(join(local.root, e)));
  const archive = tarCreate(
    { cwd: local.root, portable: true, filter: (_path, st) => !('isFile' in st) || st.isFile() || st.isDirectory() },
    entries,
  );
  const socket = connect({ host: opts.host, port: opts.port });
  const answer = readAnswer(socket, opts.timeoutMs ?? 600_000);
  archive.on('error', (err: unknown) => socket.destroy(err as Error));
  // written while connecting: the socket buffers it, and a failed connect surfaces through `answer`
  socket.write(JSON.stringify({ type: 'artifacts', token: opts.token, node: opts.node }) + '\n');
  archive.pipe(socket);
  return answer;
}

/** Node 0's one-line answer; rejects with its reason, or if the connection ends without one. */
function readAnswer(socket: Socket, timeoutMs: number): Promise<TransferResult> {
  return new Promise((resolvePromise, reject) => {
    let buf = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new ArtifactError(`node 0 did not confirm the artifacts within ${timeoutMs / 1000} s`));
    }, timeoutMs);
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => { buf += chunk; });
    // node 0 may answer and close while this side is still writing (a refused archive): the answer
    // explains more than the write error that follows, so decide only once the socket has closed
    let failure: Error | undefined;
    socket.on('error', (err) => { failure ??= err; });
    socket.on('close', () => {
      clearTimeout(timer);
      const line = buf.split('\n')[0];
      let msg: { ok?: boolean; reason?: string; files?: number; bytes?: number };
      try {
        msg = JSON.parse(line);
      } catch {
        return reject(new ArtifactError(
          `sending artifacts to node 0: ${failure ? failure.message : 'the connection closed without an answer'}`,
        ));
      }
      if (msg.ok) resolvePromise({ files: msg.files ?? 0, bytes: msg.bytes ?? 0 });
      else reject(new ArtifactError(`node 0 refused the artifacts: ${msg.reason ?? 'no reason given'}`));
    });
  });
}
