// The byte scanner under the trace readers. It walks the raw (decompressed) JSON bytes of a trace once,
// finds each event object inside `traceEvents` (or inside a bare top-level array: the legacy format), and
// indexes the few fields the merge rewrites (ph, ts, dur, pid, tid, id, bind_id, and in args: External id,
// correlation) as byte spans, without building an object. Everything else in the event is copied through
// untouched, so the merge never pays for JSON.parse + JSON.stringify on the hot path; a consumer that
// wants the whole object parses just that slice (native JSON.parse on a few hundred bytes).
//
// UTF-8 is safe to scan bytewise: every byte of a multi-byte character is ≥ 0x80, so it can never be
// mistaken for a quote, brace or backslash.

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const LBRACE = 0x7b;
const RBRACE = 0x7d;
const LBRACKET = 0x5b;
const RBRACKET = 0x5d;
const COMMA = 0x2c;
const COLON = 0x3a;

/** Kinds of byte spans an event view records, in the order they occur in the event. */
export const enum Span {
  Ts = 1,
  Dur = 2,
  Pid = 3,
  Tid = 4,
  Id = 5,
  BindId = 6,
  ExternalId = 7,
  Correlation = 8,
}

/**
 * One event, as byte offsets into `buf`. Reused from event to event by the scanner: copy what you need
 * before the visitor returns.
 */
export class EventView {
  buf: Buffer = Buffer.alloc(0);
  /** [start, end) of the event object `{…}` in buf */
  start = 0;
  end = 0;
  /** byte offset of `start` in the whole decompressed stream */
  offset = 0;
  /** value spans (including quotes for strings); -1 when the key is absent */
  phS = -1; phE = -1;
  tsS = -1; tsE = -1;
  durS = -1; durE = -1;
  pidS = -1; pidE = -1;
  tidS = -1; tidE = -1;
  nameS = -1; nameE = -1;
  catS = -1; catE = -1;
  argsS = -1; argsE = -1;
  /** spans the merge may rewrite, in file order: kind, start, end triples in spans[0, spanLen) */
  spans = new Int32Array(48);
  spanLen = 0;

  reset(buf: Buffer, start: number): void {
    this.buf = buf;
    this.start = start;
    this.phS = this.tsS = this.durS = this.pidS = this.tidS = this.nameS = this.catS = this.argsS = -1;
    this.spanLen = 0;
  }

  add(kind: Span, s: number, e: number): void {
    if (this.spanLen + 3 > this.spans.length) {
      const bigger = new Int32Array(this.spans.length * 2);
      bigger.set(this.spans);
      this.spans = bigger;
    }
    const k = this.spanLen;
    this.spans[k] = kind;
    this.spans[k + 1] = s;
    this.spans[k + 2] = e;
    this.spanLen = k + 3;
  }

  /** First character of ph ("X", "M", "s"…) as a char code; 0 if absent. */
  get phCode(): number {
    return this.phS < 0 ? 0 : this.buf[this.phS + 1];
  }
  get ph(): string {
    return this.phS < 0 ? '' : this.buf.toString('utf8', this.phS + 1, this.phE - 1);
  }
  /** The event's JSON text. */
  text(): string {
    return this.buf.toString('utf8', this.start, this.end);
  }
  /** A string field's value (without quotes, JSON escapes resolved) or null. */
  str(s: number, e: number): string | null {
    if (s < 0) return null;
    if (this.buf[s] !== QUOTE) return this.buf.toString('latin1', s, e);
    return JSON.parse(this.buf.toString('utf8', s, e)) as string;
  }
  /** A field's raw JSON text, or null when absent. */
  raw(s: number, e: number): string | null {
    return s < 0 ? null : this.buf.toString('utf8', s, e);
  }
}

export class TraceSyntaxError extends Error {
  constructor(message: string, readonly offset: number) {
    super(message);
  }
}

/**
 * Whitespace between tokens. JSON allows only space, tab, CR and LF there; any other control byte would
 * be invalid JSON anyway, so one comparison does.
 */
function isWs(c: number): boolean {
  return c <= 0x20;
}

/** Byte classes for skipping nested values: 1 quote, 2 opening bracket, 3 closing bracket, 0 the rest. */
const NEST = new Uint8Array(256);
NEST[QUOTE] = 1;
NEST[LBRACE] = NEST[LBRACKET] = 2;
NEST[RBRACE] = NEST[RBRACKET] = 3;
/** Bytes that end a number or literal: , } ] and whitespace. */
const SCALAR_END = new Uint8Array(256);
SCALAR_END[COMMA] = SCALAR_END[RBRACE] = SCALAR_END[RBRACKET] = 1;
for (let c = 0; c <= 0x20; c++) SCALAR_END[c] = 1;

/** Index just past the string starting at buf[i] (a quote), or -1 if it does not end before lim. */
function stringEnd(buf: Buffer, i: number, lim: number): number {
  // most strings are short keys and values: a plain loop; a long one (kernel names, call stacks)
  // goes to the native search for the next quote
  let j = i + 1;
  const short = j + 24 < lim ? j + 24 : lim;
  for (; j < short; j++) {
    const c = buf[j];
    if (c === QUOTE) return j + 1;
    if (c === BACKSLASH) j++;
  }
  while (j < lim) {
    const q = buf.indexOf(QUOTE, j);
    if (q < 0 || q >= lim) return -1;
    // the quote is escaped when an odd number of backslashes precede it (from j on: j starts clean)
    let b = q - 1;
    while (b >= j && buf[b] === BACKSLASH) b--;
    if ((q - 1 - b) % 2 === 0) return q + 1;
    j = q + 1;
  }
  return -1;
}

/** Index just past the JSON value starting at buf[i], or -1 if it does not end before lim. */
function valueEnd(buf: Buffer, i: number, lim: number): number {
  const c = buf[i];
  if (c === QUOTE) return stringEnd(buf, i, lim);
  if (c === LBRACE || c === LBRACKET) {
    let depth = 0;
    for (let j = i; j < lim; j++) {
      const k = NEST[buf[j]];
      if (k === 0) continue;
      if (k === 1) {
        j = stringEnd(buf, j, lim) - 1;
        if (j < 0) return -1;
      } else if (k === 2) depth++;
      else if (--depth === 0) return j + 1;
    }
    return -1;
  }
  // number, true, false, null: up to the next delimiter
  for (let j = i; j < lim; j++) if (SCALAR_END[buf[j]] === 1) return j;
  return -1;
}

function keyIs(buf: Buffer, s: number, len: number, key: Uint8Array): boolean {
  if (len !== key.length) return false;
  for (let k = 0; k < len; k++) if (buf[s + k] !== key[k]) return false;
  return true;
}

const K_EXTERNAL_ID = Buffer.from('External id');
const K_EXTERNAL_ID_OLD = Buffer.from('external id');
const K_CORRELATION = Buffer.from('correlation');
const K_BIND_ID = Buffer.from('bind_id');

/**
 * Indexes the object starting at buf[i] (`{`) into view: level 0 = the event, level 1 = its args.
 * Returns the index just past the object, -1 if it does not end before lim. `base`: stream offset of
 * buf[0], for error messages.
 */
function indexObject(buf: Buffer, i: number, lim: number, v: EventView, level: number, base: number): number {
  i++;
  for (;;) {
    while (i < lim && isWs(buf[i])) i++;
    if (i >= lim) return -1;
    const c = buf[i];
    if (c === RBRACE) return i + 1;
    if (c === COMMA) {
      i++;
      continue;
    }
    if (c !== QUOTE) throw new TraceSyntaxError(`expected a key, found '${String.fromCharCode(c)}'`, base + i);
    const ke = stringEnd(buf, i, lim);
    if (ke < 0) return -1;
    const ks = i + 1;
    const klen = ke - 1 - ks;
    i = ke;
    while (i < lim && isWs(buf[i])) i++;
    if (i >= lim) return -1;
    if (buf[i] !== COLON) throw new TraceSyntaxError(`expected ':' after a key`, base + i);
    i++;
    while (i < lim && isWs(buf[i])) i++;
    if (i >= lim) return -1;
    const vs = i;
    let ve: number;
    if (level === 0 && klen === 4 && buf[ks] === 0x61 /* args */ && buf[ks + 1] === 0x72 && buf[ks + 2] === 0x67 && buf[ks + 3] === 0x73 && buf[vs] === LBRACE) {
      ve = indexObject(buf, vs, lim, v, 1, base);
      if (ve < 0) return -1;
      v.argsS = vs;
      v.argsE = ve;
      i = ve;
      continue;
    }
    ve = valueEnd(buf, vs, lim);
    if (ve < 0) return -1;
    i = ve;
    if (level === 0) {
      const k0 = buf[ks];
      if (klen === 2) {
        const k1 = buf[ks + 1];
        if (k0 === 0x70 && k1 === 0x68) { v.phS = vs; v.phE = ve; } // ph
        else if (k0 === 0x74 && k1 === 0x73) { v.tsS = vs; v.tsE = ve; v.add(Span.Ts, vs, ve); } // ts
        else if (k0 === 0x69 && k1 === 0x64) v.add(Span.Id, vs, ve); // id
      } else if (klen === 3 && buf[ks + 1] === 0x69 && buf[ks + 2] === 0x64) {
        if (k0 === 0x70) { v.pidS = vs; v.pidE = ve; v.add(Span.Pid, vs, ve); } // pid
        else if (k0 === 0x74) { v.tidS = vs; v.tidE = ve; v.add(Span.Tid, vs, ve); } // tid
      } else if (klen === 3 && k0 === 0x64 && buf[ks + 1] === 0x75 && buf[ks + 2] === 0x72) {
        v.durS = vs; v.durE = ve; v.add(Span.Dur, vs, ve); // dur
      } else if (klen === 3 && k0 === 0x63 && buf[ks + 1] === 0x61 && buf[ks + 2] === 0x74) {
        v.catS = vs; v.catE = ve; // cat
      } else if (klen === 4 && k0 === 0x6e && buf[ks + 1] === 0x61 && buf[ks + 2] === 0x6d && buf[ks + 3] === 0x65) {
        v.nameS = vs; v.nameE = ve; // name
      } else if (keyIs(buf, ks, klen, K_BIND_ID)) v.add(Span.BindId, vs, ve);
    } else if (klen === 11) {
      if (keyIs(buf, ks, klen, K_EXTERNAL_ID) || keyIs(buf, ks, klen, K_EXTERNAL_ID_OLD)) v.add(Span.ExternalId, vs, ve);
      else if (keyIs(buf, ks, klen, K_CORRELATION)) v.add(Span.Correlation, vs, ve);
    }
  }
}

/** Top-level metadata of a trace file, collected while scanning. */
export interface RawMeta {
  format: 'kineto' | 'legacy' | null;
  /** top-level keys other than traceEvents: their raw JSON text (numbers kept exact) */
  keys: Map<string, string>;
}

const enum State {
  Root,
  ObjKey,
  ObjColon,
  ObjValue,
  Events,
  Done,
}

/**
 * Incremental scanner: feed it decompressed chunks in order; it calls `onEvent` for each complete event
 * (synchronously, with a reused view) and records top-level keys. `complete` tells whether the document
 * ended properly.
 */
export class TraceScanner {
  readonly meta: RawMeta = { format: null, keys: new Map() };
  eventCount = 0;
  /** decompressed bytes fed so far */
  bytes = 0;
  /** stream offset just past the last complete event or metadata value */
  lastCompleteEnd = 0;
  private state = State.Root;
  private inObject = false;
  private key = '';
  /** a key or scalar split across chunks: its bytes so far, rescanned with the next chunk */
  private carry: Buffer | null = null;
  /** an object, array or string split across chunks: its pieces, scanned once, joined when it ends */
  private parts: Buffer[] | null = null;
  private partsOffset = 0;
  private pDepth = 0;
  private pInStr = false;
  private pEsc = false;
  private readonly view = new EventView();

  constructor(private readonly onEvent: (v: EventView) => void) {}

  feed(chunk: Buffer): void {
    let buf = chunk;
    let base = this.bytes; // stream offset of buf[0]
    this.bytes += chunk.length;
    let i = 0;
    if (this.parts) {
      const e = this.resume(chunk);
      if (e < 0) {
        this.parts.push(Buffer.from(chunk)); // kept past this call: a copy (the reader reuses its buffers)
        return;
      }
      this.parts.push(chunk.subarray(0, e));
      const value = Buffer.concat(this.parts);
      this.parts = null;
      this.consumeValue(value, 0, value.length, this.partsOffset);
      i = e;
    } else if (this.carry) {
      base -= this.carry.length;
      buf = Buffer.concat([this.carry, chunk]);
      this.carry = null;
    }
    const n = buf.length;
    while (i < n) {
      const c = buf[i];
      if (isWs(c)) {
        i++;
        continue;
      }
      switch (this.state) {
        case State.Events:
          if (c === LBRACE) {
            const v = this.view;
            v.reset(buf, i);
            const e = indexObject(buf, i, n, v, 0, base);
            if (e < 0) return this.suspend(buf, i, base);
            this.emit(v, e, base);
            i = e;
          } else if (c === COMMA) i++;
          else if (c === RBRACKET) {
            this.state = this.inObject ? State.ObjKey : State.Done;
            i++;
          } else throw new TraceSyntaxError(`unexpected '${String.fromCharCode(c)}' in traceEvents`, base + i);
          break;
        case State.Root:
          if (c === LBRACE) {
            this.meta.format = 'kineto';
            this.inObject = true;
            this.state = State.ObjKey;
          } else if (c === LBRACKET) {
            this.meta.format = 'legacy';
            this.state = State.Events;
          } else throw new TraceSyntaxError('not a JSON trace: expected { or [', base + i);
          i++;
          break;
        case State.ObjKey:
          if (c === COMMA) i++;
          else if (c === RBRACE) {
            this.state = State.Done;
            i++;
          } else if (c === QUOTE) {
            const e = stringEnd(buf, i, n);
            if (e < 0) {
              this.carry = buf.subarray(i);
              return;
            }
            this.key = JSON.parse(buf.toString('utf8', i, e)) as string;
            this.state = State.ObjColon;
            i = e;
          } else throw new TraceSyntaxError(`expected a key, found '${String.fromCharCode(c)}'`, base + i);
          break;
        case State.ObjColon:
          if (c !== COLON) throw new TraceSyntaxError(`expected ':' after "${this.key}"`, base + i);
          this.state = State.ObjValue;
          i++;
          break;
        case State.ObjValue:
          if (this.key === 'traceEvents' && c === LBRACKET) {
            this.state = State.Events;
            i++;
          } else {
            const e = valueEnd(buf, i, n);
            if (e < 0) {
              if (c === LBRACE || c === LBRACKET || c === QUOTE) return this.suspend(buf, i, base);
              this.carry = buf.subarray(i);
              return;
            }
            i = this.consumeValue(buf, i, e, base);
          }
          break;
        case State.Done:
          // bytes after the document (a newline, a NUL some writers add): ignored
          return;
      }
    }
  }

  /** True when the JSON document was complete. */
  get complete(): boolean {
    return this.state === State.Done;
  }
  /** True while inside traceEvents (a truncated file usually ends here). */
  get inEvents(): boolean {
    return this.state === State.Events;
  }

  private emit(v: EventView, end: number, base: number): void {
    v.end = end;
    v.offset = base + v.start;
    this.eventCount++;
    this.lastCompleteEnd = base + end;
    this.onEvent(v);
  }

  /** A complete value at buf[s..e): an event or a top-level metadata value. Returns e. */
  private consumeValue(buf: Buffer, s: number, e: number, base: number): number {
    if (this.state === State.Events) {
      const v = this.view;
      v.reset(buf, s);
      if (indexObject(buf, s, e, v, 0, base) !== e) throw new TraceSyntaxError('malformed event', base + s);
      this.emit(v, e, base);
    } else {
      this.meta.keys.set(this.key, buf.toString('utf8', s, e));
      this.lastCompleteEnd = base + e;
      this.state = State.ObjKey;
    }
    return e;
  }

  /** The object/array/string at buf[s] runs past the chunk: keep its bytes, remember how far it is scanned. */
  private suspend(buf: Buffer, s: number, base: number): void {
    this.pDepth = 0;
    this.pInStr = false;
    this.pEsc = false;
    const part = Buffer.from(buf.subarray(s)); // kept past this call: a copy (usually one event's head)
    this.resume(part);
    this.parts = [part];
    this.partsOffset = base + s;
  }

  /** Continues the scan of a suspended value over the next piece; the index just past its end, or -1. */
  private resume(buf: Buffer): number {
    let depth = this.pDepth;
    let inStr = this.pInStr;
    let esc = this.pEsc;
    const n = buf.length;
    for (let j = 0; j < n; j++) {
      const b = buf[j];
      if (inStr) {
        if (esc) esc = false;
        else if (b === BACKSLASH) esc = true;
        else if (b === QUOTE) {
          inStr = false;
          if (depth === 0) return j + 1; // a top-level string value
        }
      } else if (b === QUOTE) inStr = true;
      else if (b === LBRACE || b === LBRACKET) depth++;
      else if (b === RBRACE || b === RBRACKET) {
        if (--depth === 0) return j + 1;
      }
    }
    this.pDepth = depth;
    this.pInStr = inStr;
    this.pEsc = esc;
    return -1;
  }
}
