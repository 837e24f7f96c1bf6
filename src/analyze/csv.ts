// CSV as RFC 4180 has it: fields separated by commas, a field with a comma, quote or line break is
// quoted and its quotes doubled, lines end in CRLF. Used to read the samples and to write sweep tables
// that spreadsheets open as they are.
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';

export function csvField(v: string | number | boolean | null | undefined): string {
  const s = v === null || v === undefined ? '' : String(v);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function formatCsv(rows: (string | number | boolean | null | undefined)[][]): string {
  return rows.map((r) => r.map(csvField).join(',')).join('\r\n') + '\r\n';
}

/** Parses CSV text (quoted fields may hold commas, quotes and line breaks). */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      row.push(field);
      field = '';
    } else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      row.push(field);
      rows.push(row);
      row = [];
      field = '';
    } else field += c;
  }
  if (field !== '' || row.length > 0) {
    row.push(field);
    rows.push(row);
  }
  return rows;
}

/**
 * Reads a samples CSV row by row (the files grow with the run's length, so they are not read whole),
 * giving each row as a record keyed by the header. Sample rows have no line breaks inside fields.
 */
export async function* readCsvRecords(path: string): AsyncGenerator<Record<string, string>> {
  const lines = createInterface({ input: createReadStream(path, 'utf8'), crlfDelay: Infinity });
  let header: string[] | null = null;
  for await (const line of lines) {
    if (line.trim() === '') continue;
    const fields = parseCsv(line)[0] ?? [];
    if (!header) {
      header = fields.map((f) => f.trim());
      continue;
    }
    const rec: Record<string, string> = {};
    header.forEach((h, i) => (rec[h] = (fields[i] ?? '').trim()));
    yield rec;
  }
}
