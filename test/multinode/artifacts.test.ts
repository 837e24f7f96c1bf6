// Artifacts from an agent to node 0: a real tar stream over a loopback socket, and hostile archives
// (built here byte by byte) refused with a reason while nothing is written in or outside the run dir.
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { Header } from 'tar';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ArtifactReceiver, checkArtifactEntry, sendArtifacts } from '../../src/launch/artifacts.js';
import { RunDir } from '../../src/run-dir.js';

const TOKEN = 'test-token-0123456789abcdef';
let base: string;
let runDir: RunDir;
let receiver: ArtifactReceiver;

/** Every file and folder under `dir`, relative, sorted. */
async function tree(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string) => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      out.push(relative(dir, join(d, e.name)) + (e.isDirectory() ? '/' : ''));
      if (e.isDirectory()) await walk(join(d, e.name));
    }
  };
  await walk(dir);
  return out.sort();
}

/** One tar entry: a 512-byte header (tar's own encoder, so the checksum is right) and padded data. */
function entry(path: string, type: string, data = '', extra: Record<string, unknown> = {}): Buffer {
  const body = Buffer.from(data);
  const h = new Header({ path, type, size: body.length, mode: 0o644, mtime: new Date(0), ...extra } as never);
  h.encode();
  const pad = Buffer.alloc((512 - (body.length % 512)) % 512);
  return Buffer.concat([h.block!, body, pad]);
}
const END = Buffer.alloc(1024);

/** Sends a header line and raw bytes the way an agent does; resolves with node 0's answer. */
function sendRaw(header: object | string, bytes: Buffer): Promise<{ ok: boolean; reason?: string; files?: number }> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port: receiver.port });
    let buf = '';
    s.setEncoding('utf8');
    s.on('data', (c: string) => { buf += c; });
    s.on('error', () => {}); // node 0 may close while we write; its answer is what matters
    s.on('close', () => {
      try { resolve(JSON.parse(buf.split('\n')[0])); } catch { reject(new Error(`no answer: ${buf}`)); }
    });
    s.write((typeof header === 'string' ? header : JSON.stringify(header)) + '\n');
    s.end(bytes);
  });
}

beforeAll(async () => {
  base = await mkdtemp(join(tmpdir(), 'moe-artifacts-'));
  runDir = new RunDir(join(base, 'outer', 'run'));
  await runDir.create();
  await writeFile(runDir.manifest, '{"original":true}\n');
  receiver = await ArtifactReceiver.listen({
    runDir, token: TOKEN, bind: '127.0.0.1', nodes: new Map([[1, [2, 3]], [2, [4, 5]]]),
  });
});
afterAll(async () => {
  await receiver?.close();
  await rm(base, { recursive: true, force: true });
});

describe('checkArtifactEntry', () => {
  it.each([
    ['rank-2/stdout.log', 'File', null],
    ['./rank-3/', 'Directory', null],
    ['samples/process.csv', 'File', null],
    ['launcher.log', 'File', null],
    ['/etc/passwd', 'File', /absolute/],
    ['C:/x', 'File', /absolute/],
    ['rank-2/../../x', 'File', /"\.\."/],
    ['rank-2/a\\b', 'File', /backslash/],
    ['rank-9/x', 'File', /rank 9 does not belong/],
    ['manifest.json', 'File', /outside/],
    ['rank-2/l', 'SymbolicLink', /SymbolicLink/],
    ['rank-2/l', 'Link', /Link/],
    ['rank-2/d', 'CharacterDevice', /CharacterDevice/],
    ['rank-2/f', 'FIFO', /FIFO/],
  ])('%s (%s)', (path, type, expected) => {
    const why = checkArtifactEntry(path, type, [2, 3]);
    if (expected === null) expect(why).toBeNull();
    else expect(why).toMatch(expected);
  });
});

describe('artifact transfer over loopback', () => {
  it('hostile or broken archives are refused with a reason; nothing is written in or outside the run dir', async () => {
    const before = await tree(base);
    const ok = (p: string) => entry(p, 'File', 'fine');
    const cases: Array<[string, object | string, Buffer, RegExp]> = [
      ['absolute path', { type: 'artifacts', token: TOKEN, node: 1 }, Buffer.concat([ok('rank-2/a'), entry(join(base, 'evil'), 'File', 'x'), END]), /absolute/],
      ['dot-dot', { type: 'artifacts', token: TOKEN, node: 1 }, Buffer.concat([entry('../evil', 'File', 'x'), END]), /"\.\."/],
      ['dot-dot inside', { type: 'artifacts', token: TOKEN, node: 1 }, Buffer.concat([entry('rank-2/../../evil', 'File', 'x'), END]), /"\.\."/],
      ['symlink then write through it', { type: 'artifacts', token: TOKEN, node: 1 },
        Buffer.concat([entry('rank-2/up', 'SymbolicLink', '', { linkpath: '../..' }), entry('rank-2/up/evil', 'File', 'x'), END]), /SymbolicLink/],
      ['hardlink to a file outside', { type: 'artifacts', token: TOKEN, node: 1 },
        Buffer.concat([entry('rank-2/h', 'Link', '', { linkpath: '/etc/passwd' }), END]), /Link/],
      ['character device', { type: 'artifacts', token: TOKEN, node: 1 },
        Buffer.concat([entry('rank-2/null', 'CharacterDevice', '', { devmaj: 1, devmin: 3 }), END]), /CharacterDevice/],
      ['fifo', { type: 'artifacts', token: TOKEN, node: 1 }, Buffer.concat([entry('rank-2/p', 'FIFO'), END]), /FIFO/],
      ['another node\'s rank', { type: 'artifacts', token: TOKEN, node: 1 }, Buffer.concat([entry('rank-4/x', 'File', 'x'), END]), /rank 4 does not belong/],
      ['the manifest', { type: 'artifacts', token: TOKEN, node: 1 }, Buffer.concat([entry('manifest.json', 'File', '{}'), END]), /outside/],
      ['damaged header', { type: 'artifacts', token: TOKEN, node: 1 },
        (() => { const b = Buffer.concat([ok('rank-2/a'), END]); b[100] ^= 0x40; return b; })(), /checksum|invalid|refused/i],
      ['cut inside a file', { type: 'artifacts', token: TOKEN, node: 1 },
        Buffer.concat([entry('rank-2/big', 'File', 'y'.repeat(5000))]).subarray(0, 2048), /truncated|ended before/i],
      ['no end marker', { type: 'artifacts', token: TOKEN, node: 1 }, ok('rank-2/a'), /ended before the end of the archive/],
      ['not tar at all', { type: 'artifacts', token: TOKEN, node: 1 }, randomBytes(4096), /refused/],
      ['wrong token', { type: 'artifacts', token: 'nope', node: 1 }, Buffer.concat([ok('rank-2/a'), END]), /wrong token/],
      ['unexpected node', { type: 'artifacts', token: TOKEN, node: 7 }, Buffer.concat([ok('rank-2/a'), END]), /node 7 is not expected/],
      ['garbage first line', 'GET / HTTP/1.0', Buffer.alloc(0), /not JSON/],
      ['over-long first line', 'x'.repeat(10_000), Buffer.alloc(0), /longer than/],
    ];
    for (const [what, header, bytes, reason] of cases) {
      const answer = await sendRaw(header, bytes);
      expect(answer.ok, what).toBe(false);
      expect(answer.reason, what).toMatch(reason);
    }
    expect(await tree(base)).toEqual(before);
    expect(JSON.parse(await readFile(runDir.manifest, 'utf8'))).toEqual({ original: true });
  });

  it('an agent\'s ranks, samples and log arrive whole after all that; links are left out', async () => {
    const agentRoot = join(base, 'agent-node-1');
    const trace = randomBytes(300_000); // a binary file spanning many tar blocks and socket writes
    await mkdir(join(agentRoot, 'rank-2'), { recursive: true });
    await mkdir(join(agentRoot, 'rank-3', 'nested'), { recursive: true });
    await mkdir(join(agentRoot, 'samples'), { recursive: true });
    await writeFile(join(agentRoot, 'rank-2', 'h_1.rank2.pt.trace.json.gz'), trace);
    await writeFile(join(agentRoot, 'rank-2', 'stdout.log'), 'rank 2 says hi\n');
    await writeFile(join(agentRoot, 'rank-3', 'nested', 'ops.json'), '{"ops":[]}');
    await writeFile(join(agentRoot, 'samples', 'process.csv'), 'recv_ns,rank,pid,cpu_percent,rss_bytes,nprocs\n');
    await writeFile(join(agentRoot, 'launcher.log'), 'agent log\n');
    await symlink('/etc/passwd', join(agentRoot, 'rank-2', 'passwd-link'));
    await mkdir(join(agentRoot, 'rank-9'), { recursive: true }); // not this node's: not sent

    const waited = receiver.waitFor(1, 60_000);
    const sent = await sendArtifacts({ host: '127.0.0.1', port: receiver.port, token: TOKEN, node: 1, root: agentRoot, ranks: [2, 3] });
    expect(sent.files).toBe(5);
    expect(await waited).toEqual(sent);

    expect(await readFile(join(runDir.rankDir(2), 'h_1.rank2.pt.trace.json.gz'))).toEqual(trace);
    expect(await readFile(runDir.stdout(2), 'utf8')).toBe('rank 2 says hi\n');
    expect(await readFile(join(runDir.rankDir(3), 'nested', 'ops.json'), 'utf8')).toBe('{"ops":[]}');
    expect(await readFile(join(runDir.nodeSamplesDir(1), 'process.csv'), 'utf8')).toMatch(/^recv_ns,rank/);
    expect(await readFile(runDir.nodeLauncherLog(1), 'utf8')).toBe('agent log\n');
    const files = await tree(runDir.root);
    expect(files).not.toContain('rank-2/passwd-link');
    expect(files.some((f) => f.startsWith('rank-9') || f.startsWith('.incoming'))).toBe(false);
  });

  it('a node that never sends is named at the timeout with its last failed attempt', async () => {
    await sendRaw({ type: 'artifacts', token: TOKEN, node: 2 }, Buffer.concat([entry('rank-2/x', 'File', 'x'), END]));
    await expect(receiver.waitFor(2, 500)).rejects.toThrow(/node 2 sent no complete artifacts .*rank 2 does not belong/);
  });

  it('a node with nothing to send still completes (an empty archive)', async () => {
    const empty = await mkdtemp(join(base, 'empty-'));
    const sent = await sendArtifacts({ host: '127.0.0.1', port: receiver.port, token: TOKEN, node: 2, root: empty, ranks: [4, 5] });
    expect(sent).toEqual({ files: 0, bytes: 0 });
    expect(await readdir(runDir.nodeSamplesDir(2))).toEqual([]);
    expect(await receiver.waitFor(2, 5000)).toEqual(sent);
  });

  it('an agent is told when node 0 is not there', async () => {
    const closed = await ArtifactReceiver.listen({ runDir, token: TOKEN, bind: '127.0.0.1', nodes: new Map() });
    const port = closed.port;
    await closed.close();
    await expect(sendArtifacts({ host: '127.0.0.1', port, token: TOKEN, node: 1, root: base, ranks: [] }))
      .rejects.toThrow(/sending artifacts to node 0: .*ECONNREFUSED/);
  });
});
