import { describe, expect, it } from 'vitest';
import { MAX_LINE_BYTES } from '../../src/launch/protocol.js';
import { LineSplitter, parseClientMessage } from '../../src/launch/wire.js';

describe('parseClientMessage', () => {
  it('accepts every client message of the contract', () => {
    const lines = [
      '{"type":"hello","token":"t","role":"rank","rank":1,"pid":42,"host":"h"}',
      '{"type":"hello","token":"t","role":"agent","node":1,"ranks":[2,3],"pid":42,"host":"h"}',
      '{"type":"ping","t0":"1764392011123456789"}',
      '{"type":"clock","offset_ns":"-2500000123","rtt_ns":"51234"}',
      '{"type":"status","state":"profiling","step":3,"steps":10,"detail":"eval"}',
      '{"type":"status","state":"done"}',
      '{"type":"barrier","name":"start"}',
      '{"type":"rank_started","rank":2,"pid":7,"t_ns":"5"}',
      '{"type":"rank_ended","rank":2,"t_ns":"5","exit_code":null,"signal":"SIGKILL","status":"stopped","stderr_tail":["x"]}',
    ];
    for (const line of lines) {
      const r = parseClientMessage(line);
      expect(r.ok, line).toBe(true);
      if (r.ok) expect(r.message).toEqual(JSON.parse(line));
    }
  });

  it('drops unknown fields rather than refusing a newer client', () => {
    const r = parseClientMessage('{"type":"ping","t0":"5","extra":1}');
    expect(r).toEqual({ ok: true, message: { type: 'ping', t0: '5' } });
  });

  it('gives a reason for each kind of bad line', () => {
    const cases: Array<[string, RegExp]> = [
      ['not json', /not valid JSON/],
      ['[1,2]', /not a JSON object/],
      ['null', /not a JSON object/],
      ['{"t0":"1"}', /no "type"/],
      ['{"type":"launch_missiles"}', /unknown message type "launch_missiles"/],
      ['{"type":"__proto__"}', /unknown message type/],
      ['{"type":"toString"}', /unknown message type/],
      ['{"type":"ping","t0":1764392011123456789}', /invalid ping message: t0/],
      ['{"type":"ping","t0":"-5"}', /invalid ping message: t0/],
      ['{"type":"hello","token":"t","role":"rank","rank":-1,"pid":1,"host":"h"}', /invalid hello message: rank/],
      ['{"type":"hello","token":"t","role":"root","rank":0,"pid":1,"host":"h"}', /invalid hello message/],
      ['{"type":"hello","token":5,"role":"rank","rank":0,"pid":1,"host":"h"}', /invalid hello message: token/],
      ['{"type":"status","state":"dancing"}', /invalid status message: state/],
      ['{"type":"barrier","name":"a b"}', /invalid barrier message: name/],
      ['{"type":"barrier","name":""}', /invalid barrier message: name/],
    ];
    for (const [line, reason] of cases) {
      const r = parseClientMessage(line);
      expect(r.ok, line).toBe(false);
      if (!r.ok) expect(r.reason, line).toMatch(reason);
    }
  });
});

describe('LineSplitter', () => {
  it('joins lines split across chunks and splits several lines in one chunk', () => {
    const s = new LineSplitter();
    expect(s.push(Buffer.from('{"a":')).lines).toEqual([]);
    expect(s.push(Buffer.from('1}\n{"b":2}\r\n{"c"')).lines).toEqual(['{"a":1}', '{"b":2}']);
    expect(s.push(Buffer.from(':3}\n')).lines).toEqual(['{"c":3}']);
  });

  it('refuses a line over the bound whether or not its newline has come', () => {
    const unterminated = new LineSplitter(16);
    expect(unterminated.push(Buffer.alloc(10, 0x61)).error).toBeUndefined();
    expect(unterminated.push(Buffer.alloc(10, 0x61)).error).toMatch(/longer than 16 bytes/);
    const terminated = new LineSplitter(16);
    const r = terminated.push(Buffer.from('ok\n' + 'a'.repeat(17) + '\n'));
    expect(r.lines).toEqual(['ok']);
    expect(r.error).toMatch(/longer than 16 bytes/);
    // exactly at the bound is fine
    expect(new LineSplitter(16).push(Buffer.from('a'.repeat(16) + '\n')).lines).toEqual(['a'.repeat(16)]);
  });

  it('uses the protocol bound by default and refuses invalid UTF-8', () => {
    expect(new LineSplitter().push(Buffer.alloc(MAX_LINE_BYTES + 1, 0x20)).error).toMatch(/longer than/);
    expect(new LineSplitter().push(Buffer.from([0xff, 0xfe, 0x0a])).error).toMatch(/UTF-8/);
  });
});
