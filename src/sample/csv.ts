// CSV as RFC 4180 has it: fields separated by commas, a field with a comma, quote or line break is
// quoted and its quotes doubled. The one CSV module of moe-run: it lives in the sample stage because
// that stage writes the samples CSVs, and every later stage (launch's node merge, trace, analyze,
// report) reads or writes CSV through it (DESIGN: a stage imports only stages before it).
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';

/** A field as written: quoted only when it holds a comma, quote or line break. */
export function csvField(v: string | number | boolean | null | undefined): string {
  const s = v === null || v === undefined ? '' : String(v);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** A whole table (e.g. a sweep report), lines ending in CRLF so that spreadsheets open it as it is. */
export function formatCsv(rows: (string | number | boolean | null | undefined)[][]): string {
  return rows.map((r) => r.map(csvField).join(',')).join('\r\n') + '\r\n';
}

/** One CSV line's fields (quotes removed, doubled quotes undone); a line without quotes is a plain split. */
export function splitCsv(line: string): string[] {
  if (!line.includes('"')) return line.split(',');
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quoted) {
      if (c === '"' && line[i + 1] === '"') {
        cur += '"';
        i++;
      } else if (c === '"') quoted = false;
      else cur += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      out.push(cur);
      cur = '';
    } else cur += c;
  }
  out.push(cur);
  return out;
}

/**
 * A samples cell as a number: the leading number of what nvidia-smi prints with or without nounits
 * ("45 %", "1234 MiB", "250.3"); "[N/A]", "" or anything else → null. The one parser of sample cells,
 * so that the timeline's counters (trace) and the summary's (analyze) read the same cells as numbers.
 */
export function sampleNumber(cell: string | undefined): number | null {
  if (cell === undefined) return null;
  const m = /^\s*(-?\d+(?:\.\d+)?)(?:\s*[A-Za-z%°]*)?\s*$/.exec(cell);
  return m ? Number(m[1]) : null;
}

/**
 * Reads a samples CSV row by row (the files grow with the run's length, so they are not read whole),
 * giving each row as a record keyed by the header, fields trimmed. Sample rows have no line breaks
 * inside fields. A header's unit suffix is dropped: "memory.used [MiB]" (nvidia-smi's own header) and
 * "memory.used" name the same field.
 */
export async function* readCsvRecords(path: string): AsyncGenerator<Record<string, string>> {
  const lines = createInterface({ input: createReadStream(path, 'utf8'), crlfDelay: Infinity });
  let header: string[] | null = null;
  for await (const line of lines) {
    if (line.trim() === '') continue;
    const cells = splitCsv(line).map((c) => c.trim());
    if (!header) {
      header = cells.map((h) => h.replace(/\s*\[[^\]]*\]$/, ''));
      continue;
    }
    const rec: Record<string, string> = {};
    header.forEach((h, i) => (rec[h] = cells[i] ?? ''));
    yield rec;
  }
}
