// The one CSV module: what it writes reads back field for field, and the samples reader keys rows by a
// header that may carry nvidia-smi's unit suffixes.
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { csvField, formatCsv, readCsvRecords, splitCsv } from '../../src/sample/csv.js';

describe('sample/csv', () => {
  it('quotes only fields that need it, and splitCsv reads them back', () => {
    const fields = ['plain', 'H200, SXM', 'say "hi"', '', '42'];
    const line = fields.map(csvField).join(',');
    expect(line).toBe('plain,"H200, SXM","say ""hi""",,42');
    expect(splitCsv(line)).toEqual(fields);
    expect(splitCsv('a,,b,')).toEqual(['a', '', 'b', '']);
    expect(csvField(null)).toBe('');
    expect(csvField(1.5)).toBe('1.5');
  });

  it('formatCsv ends every line in CRLF', () => {
    const text = formatCsv([['run', 'status'], ['r1', 'failed: a, b']]);
    expect(text).toBe('run,status\r\nr1,"failed: a, b"\r\n');
    expect(text.slice(0, -2).split('\r\n').map(splitCsv)).toEqual([['run', 'status'], ['r1', 'failed: a, b']]);
  });

  it('readCsvRecords keys trimmed rows by the header, without unit suffixes, skipping blank lines', async () => {
    const path = join(await mkdtemp(join(tmpdir(), 'moe-csv-')), 'smi.csv');
    await writeFile(path, 'recv_ns, name, memory.used [MiB]\r\n1,"H200, SXM", 1234\r\n\r\n2,x\r\n');
    const rows = [];
    for await (const r of readCsvRecords(path)) rows.push(r);
    expect(rows).toEqual([
      { recv_ns: '1', name: 'H200, SXM', 'memory.used': '1234' },
      { recv_ns: '2', name: 'x', 'memory.used': '' },
    ]);
  });
});
