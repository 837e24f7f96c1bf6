// The nvidia-smi line parser against every real capture: ../shared/nvidia-smi (H200, H100, H200 in MIG
// mode, a GeForce RTX 2080 with [N/A]) and the extra captures in test/fixtures/nvidia-smi-extra when
// present. Captures are `--format=csv` with units; the sampler asks for nounits, which the fake serves.
import { afterEach, describe, expect, it } from 'vitest';
import {
  DEFAULT_FIELDS, cleanValue, csvColumns, parseHeaderLine, parseQueryLine, timestampToNs,
} from '../../src/sample/nvidia-smi.js';
import { EXTRA_CAPTURES, SHARED_CAPTURES, captureFiles, querySections } from './helpers.js';

const NO_VALUE = /^(\[.*\]|N\/A)$/;

describe.each([...captureFiles(SHARED_CAPTURES), ...captureFiles(EXTRA_CAPTURES)])('%s', (file) => {
  const sections = querySections(file);

  it('has idle and load query-gpu rows', () => {
    expect(sections.map((s) => s.phase)).toEqual(expect.arrayContaining(['idle', 'load']));
    for (const s of sections) expect(s.rows.length).toBeGreaterThan(0);
  });

  it('parses every row: one value per field, no-value answers empty, units stripped, numbers finite', () => {
    for (const s of sections) {
      const { fields, units } = parseHeaderLine(s.header);
      expect(fields).toContain('timestamp');
      for (const row of s.rows) {
        const raw = row.split(', ');
        const values = parseQueryLine(row, units)!;
        expect(values).toHaveLength(fields.length);
        values.forEach((v, i) => {
          const r = raw[i].trim();
          if (NO_VALUE.test(r)) expect(v, fields[i]).toBe('');
          else if (units[i] && r.endsWith(` ${units[i]}`)) expect(v, fields[i]).toBe(r.slice(0, -units[i]!.length - 1));
          else expect(v, fields[i]).toBe(r);
          // a column with a unit is numeric: a number or nothing, never NaN or "[N/A]"
          if (units[i]) expect(v === '' || Number.isFinite(Number(v)), `${fields[i]}=${v}`).toBe(true);
        });
        const ts = values[fields.indexOf('timestamp')];
        const ns = timestampToNs(ts);
        expect(ns, ts).toMatch(/^\d+$/);
        expect(localStamp(Number(BigInt(ns!) / 1_000_000n))).toBe(ts); // back to the same local time
      }
    }
  });

  it('has every default field (or its canonical name) among its columns', () => {
    const { fields } = parseHeaderLine(sections[0].header);
    const canonical: Record<string, string> = { 'clocks.sm': 'clocks.current.sm', 'clocks.mem': 'clocks.current.memory' };
    for (const f of DEFAULT_FIELDS) expect(fields).toContain(canonical[f] ?? f);
  });
});

describe('the captures as a set', () => {
  const rows = captureFiles(SHARED_CAPTURES).flatMap((file) => querySections(file).flatMap((s) => {
    const { fields, units } = parseHeaderLine(s.header);
    return s.rows.map((r) => ({ file, raw: r, values: Object.fromEntries(fields.map((f, i) => [f, parseQueryLine(r, units)![i]])) }));
  }));

  it('MIG mode: utilisation is not reported and comes out empty, memory still a number', () => {
    const mig = rows.filter((r) => r.values['mig.mode.current'] === 'Enabled');
    expect(mig.length).toBeGreaterThan(0);
    for (const r of mig) {
      expect(r.raw).toContain('[N/A]');
      expect(r.values['utilization.gpu']).toBe('');
      expect(Number.isFinite(Number(r.values['memory.used']))).toBe(true);
    }
  });

  it('GeForce: [N/A] fields come out empty', () => {
    const geforce = rows.filter((r) => /GeForce/.test(r.values.name));
    expect(geforce.length).toBeGreaterThan(0);
    for (const r of geforce) {
      expect(r.values['mig.mode.current']).toBe('');
      expect(Object.values(r.values).some((v) => /N\/A/.test(v))).toBe(false);
    }
  });
});

describe('values and lines', () => {
  it.each(['[N/A]', '[Not Supported]', '[Unknown Error]', '[Insufficient Permissions]', 'N/A', ' [N/A] '])('%s → empty', (raw) => {
    expect(cleanValue(raw)).toBe('');
    expect(cleanValue(raw, 'W')).toBe('');
  });

  it('strips only the column\'s own unit', () => {
    expect(cleanValue('77.71 W', 'W')).toBe('77.71');
    expect(cleanValue('100 %', '%')).toBe('100');
    expect(cleanValue('77.71', 'W')).toBe('77.71'); // nounits
    expect(cleanValue('NVIDIA H200')).toBe('NVIDIA H200');
  });

  it('a line that is not a sample (an error nvidia-smi printed mid-stream) is rejected', () => {
    const units = DEFAULT_FIELDS.map(() => undefined);
    expect(parseQueryLine('Unable to determine the device handle for GPU0000:83:00.0: Unknown Error', units)).toBeNull();
    expect(parseQueryLine('2024/05/01 12:34:56.789, 0', units)).toBeNull();
  });

  it('timestamp_ns sits next to timestamp', () => {
    expect(csvColumns(['index', 'timestamp', 'power.draw'])).toEqual(['index', 'timestamp', 'timestamp_ns', 'power.draw']);
    expect(csvColumns(['index'])).toEqual(['index']);
  });
});

describe('timestamps are host local time', () => {
  const saved = process.env.TZ;
  afterEach(() => {
    if (saved === undefined) delete process.env.TZ;
    else process.env.TZ = saved;
  });

  it('converts with the time zone of this process', () => {
    process.env.TZ = 'UTC';
    const utc = timestampToNs('2024/05/01 12:34:56.789');
    expect(utc).toBe(`${Date.UTC(2024, 4, 1, 12, 34, 56, 789)}000000`);
    process.env.TZ = 'Asia/Kolkata'; // UTC+5:30, no daylight saving
    expect(BigInt(timestampToNs('2024/05/01 12:34:56.789')!)).toBe(BigInt(utc!) - 19_800_000_000_000n);
  });

  it('rejects what is not a timestamp', () => {
    for (const bad of ['', '[N/A]', '2024-05-01 12:34:56.789', '2024/05/01 12:34:56']) expect(timestampToNs(bad)).toBeNull();
  });
});

function localStamp(ms: number): string {
  const d = new Date(ms);
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${d.getFullYear()}/${p(d.getMonth() + 1)}/${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}
