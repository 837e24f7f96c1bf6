// An agent's samples moved onto node 0's clock and merged, in order, into the run's sample files.
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { mergeNodeSamples } from '../../src/launch/agent-samples.js';
import { RunDir } from '../../src/run-dir.js';

let base: string;
afterEach(async () => { await rm(base, { recursive: true, force: true }); });

async function setup(): Promise<RunDir> {
  base = await mkdtemp(join(tmpdir(), 'moe-samples-'));
  const run = new RunDir(join(base, 'run'));
  await run.create();
  await mkdir(run.nodeSamplesDir(1), { recursive: true });
  return run;
}

describe('mergeNodeSamples', () => {
  it('shifts every *_ns column by the node offset and keeps the rows sorted by recv_ns', async () => {
    const run = await setup();
    const header = 'recv_ns,host,timestamp,timestamp_ns,name,utilization.gpu [%]';
    await writeFile(run.nvidiaSmiCsv, [header,
      '1000000000000000100,a,2026/11/29 05:00:00.000,1000000000000000090,"H200, SXM",10',
      '1000000000000000300,a,2026/11/29 05:00:00.200,1000000000000000290,"H200, SXM",11',
      '1000000000000000500,a,2026/11/29 05:00:00.400,1000000000000000490,"H200, SXM",12', ''].join('\n'));
    await writeFile(join(run.nodeSamplesDir(1), 'nvidia-smi.csv'), [header,
      '1000000000000000160,b,2026/11/29 05:00:00.100,1000000000000000150,"H200, SXM",50',
      '1000000000000000360,b,2026/11/29 05:00:00.300,1000000000000000350,"H200, SXM",',
      '1000000000000009000,b,2026/11/29 05:00:09.000,1000000000000008990,"H200, SXM",52', ''].join('\n'));
    await writeFile(join(run.nodeSamplesDir(1), 'gpu-topology.txt'), 'GPU0 X\n');

    expect(await mergeNodeSamples(run, 1, -50n)).toEqual([]);
    const rows = (await readFile(run.nvidiaSmiCsv, 'utf8')).trim().split('\n');
    expect(rows[0]).toBe(header);
    expect(rows.slice(1).map((r) => r.split(',')[0])).toEqual([
      '1000000000000000100', '1000000000000000110', '1000000000000000300', '1000000000000000310',
      '1000000000000000500', '1000000000000008950',
    ]);
    expect(rows[2]).toBe('1000000000000000110,b,2026/11/29 05:00:00.100,1000000000000000100,"H200, SXM",50');
    expect(rows[4]).toMatch(/,"H200, SXM",$/); // an empty (unsupported) value stays empty
    // merged files leave the node's folder; what cannot be merged stays there
    expect(await readdir(run.nodeSamplesDir(1))).toEqual(['gpu-topology.txt']);
  });

  it('copies a kind node 0 has none of, and keeps apart a file whose columns differ', async () => {
    const run = await setup();
    await writeFile(join(run.nodeSamplesDir(1), 'process.csv'), 'recv_ns,rank,pid,cpu_percent,rss_bytes,nprocs\n200,2,77,99.5,1000,1\n');
    await writeFile(run.nvidiaSmiCsv, 'recv_ns,host,utilization.gpu [%]\n1,a,3\n');
    await writeFile(join(run.nodeSamplesDir(1), 'nvidia-smi.csv'), 'recv_ns,host,memory.used [MiB]\n2,b,4\n');

    const notes = await mergeNodeSamples(run, 1, 1000n);
    expect(await readFile(run.processCsv, 'utf8')).toBe('recv_ns,rank,pid,cpu_percent,rss_bytes,nprocs\n1200,2,77,99.5,1000,1\n');
    expect(notes).toEqual([expect.stringMatching(/samples\/node-1\/nvidia-smi\.csv kept apart/)]);
    expect(await readFile(run.nvidiaSmiCsv, 'utf8')).toBe('recv_ns,host,utilization.gpu [%]\n1,a,3\n');
    expect(await readdir(run.nodeSamplesDir(1))).toEqual(['nvidia-smi.csv']);
  });

  it('does nothing for a node without samples', async () => {
    const run = await setup();
    expect(await mergeNodeSamples(run, 5, 0n)).toEqual([]);
  });
});
