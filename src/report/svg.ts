// Inline SVG charts for report.html, drawn here so that the report is one file with no scripts and
// nothing fetched: stacked bars, line charts over time, histograms. Each function returns an <svg>.

export const PALETTE = ['#4e79a7', '#f28e2b', '#59a14f', '#e15759', '#76b7b2', '#edc948', '#b07aa1', '#ff9da7', '#9c755f', '#bab0ac'];

export function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

const f = (n: number) => Number(n.toFixed(1));

/** Axis labels stay short: 150000 → "150k", 2500000 → "2.5M". */
function tickLabel(v: number): string {
  const a = Math.abs(v);
  if (a >= 1e6) return `${Number((v / 1e6).toPrecision(3))}M`;
  if (a >= 1e4) return `${Number((v / 1e3).toPrecision(3))}k`;
  return String(Number(v.toPrecision(4)));
}

/** "Nice" tick values covering [0, max]. */
function ticks(max: number, n = 5): number[] {
  if (!(max > 0)) return [0];
  const raw = max / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const out: number[] = [];
  for (let v = 0; v <= max + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  if (out[out.length - 1] < max) out.push(Number((out[out.length - 1] + step).toPrecision(12)));
  return out;
}

function legend(items: { label: string; color: string }[], x: number, y: number): string {
  let cx = x;
  return items
    .map((it) => {
      const s = `<rect x="${f(cx)}" y="${y - 9}" width="10" height="10" fill="${it.color}"/>` +
        `<text x="${f(cx + 14)}" y="${y}" class="lg">${esc(it.label)}</text>`;
      cx += 24 + it.label.length * 6.5;
      return s;
    })
    .join('');
}

export interface StackedRow { label: string; values: number[]; }

/**
 * Horizontal stacked bars, one per row, each segment a share of the row's total (0–100%), with the
 * segment's percent written inside when it fits.
 */
export function stackedBars(rows: StackedRow[], segments: string[], colors = PALETTE): string {
  const left = 90, width = 640, barH = 22, gap = 10, top = 30;
  const height = top + rows.length * (barH + gap) + 24;
  const bars = rows.map((r, i) => {
    const total = r.values.reduce((a, b) => a + b, 0);
    const y = top + i * (barH + gap);
    let x = left;
    const segs = r.values.map((v, k) => {
      const w = total > 0 ? (width * v) / total : 0;
      const p = total > 0 ? (100 * v) / total : 0;
      const rect = `<rect x="${f(x)}" y="${y}" width="${f(w)}" height="${barH}" fill="${colors[k % colors.length]}">` +
        `<title>${esc(`${r.label} · ${segments[k]}: ${p.toFixed(1)}%`)}</title></rect>` +
        (w > 34 ? `<text x="${f(x + w / 2)}" y="${y + 15}" class="in">${p.toFixed(0)}%</text>` : '');
      x += w;
      return rect;
    });
    return `<text x="${left - 8}" y="${y + 15}" class="rl">${esc(r.label)}</text>${segs.join('')}`;
  });
  const axis = [0, 25, 50, 75, 100]
    .map((p) => `<line x1="${left + (width * p) / 100}" x2="${left + (width * p) / 100}" y1="${top - 4}" y2="${height - 22}" class="grid"/>` +
      `<text x="${left + (width * p) / 100}" y="${height - 8}" class="tk">${p}%</text>`)
    .join('');
  return `<svg viewBox="0 0 ${left + width + 20} ${height}" class="chart" role="img">` +
    `${legend(segments.map((s, k) => ({ label: s, color: colors[k % colors.length] })), left, 16)}${axis}${bars.join('')}</svg>`;
}

export interface Series { label: string; t: number[]; y: (number | null)[]; }

/** Lines over time (x: seconds), gaps where a value is missing; y from 0 to yMax (or the data's max). */
export function lineChart(series: Series[], opts: { yLabel: string; yMax?: number; xLabel?: string }): string {
  const left = 60, right = 20, top = 30, bottom = 36, width = 720, height = 220;
  const pw = width - left - right, ph = height - top - bottom;
  const allT = series.flatMap((s) => s.t);
  const tMin = allT.length ? Math.min(0, ...allT) : 0;
  const tMax = allT.length ? Math.max(...allT) : 1;
  const dataMax = Math.max(0, ...series.flatMap((s) => s.y.filter((v): v is number => v !== null)));
  const yTicks = ticks(opts.yMax ?? dataMax);
  const yMax = yTicks[yTicks.length - 1] || 1;
  const xTicks = ticks(tMax - tMin);
  const xSpan = (xTicks[xTicks.length - 1] || 1);
  const X = (t: number) => left + (pw * (t - tMin)) / xSpan;
  const Y = (v: number) => top + ph - (ph * v) / yMax;
  const grid =
    yTicks.map((v) => `<line x1="${left}" x2="${left + pw}" y1="${f(Y(v))}" y2="${f(Y(v))}" class="grid"/><text x="${left - 6}" y="${f(Y(v) + 4)}" class="yt">${tickLabel(v)}</text>`).join('') +
    xTicks.map((v) => `<text x="${f(X(v + tMin))}" y="${top + ph + 16}" class="tk">${tickLabel(v + tMin)}</text>`).join('');
  const lines = series.map((s, k) => {
    const parts: string[] = [];
    let cur = '';
    s.t.forEach((t, i) => {
      const v = s.y[i];
      if (v === null || v === undefined) {
        if (cur) parts.push(cur);
        cur = '';
        return;
      }
      cur += `${cur ? 'L' : 'M'}${f(X(t))},${f(Y(v))}`;
    });
    if (cur) parts.push(cur);
    return `<path d="${parts.join('')}" fill="none" stroke="${PALETTE[k % PALETTE.length]}" stroke-width="1.6"><title>${esc(s.label)}</title></path>`;
  });
  return `<svg viewBox="0 0 ${width} ${height}" class="chart" role="img">` +
    `${legend(series.map((s, k) => ({ label: s.label, color: PALETTE[k % PALETTE.length] })), left, 16)}${grid}` +
    `<line x1="${left}" x2="${left}" y1="${top}" y2="${top + ph}" class="axis"/><line x1="${left}" x2="${left + pw}" y1="${top + ph}" y2="${top + ph}" class="axis"/>` +
    `${lines.join('')}<text x="${left + pw / 2}" y="${height - 4}" class="tk">${esc(opts.xLabel ?? 'seconds from the start barrier')}</text>` +
    `<text x="14" y="${top + ph / 2}" class="tk" transform="rotate(-90 14 ${top + ph / 2})">${esc(opts.yLabel)}</text></svg>`;
}

/** Vertical bars over bins given by their edges (counts per bin). */
export function histogram(edges: number[], counts: number[], xLabel: string): string {
  const left = 50, right = 20, top = 16, bottom = 40, width = 720, height = 200;
  const pw = width - left - right, ph = height - top - bottom;
  const yTicks = ticks(Math.max(1, ...counts), 4);
  const yMax = yTicks[yTicks.length - 1];
  const bw = counts.length ? pw / counts.length : pw;
  const bars = counts.map((c, i) => {
    const h = (ph * c) / yMax;
    return `<rect x="${f(left + i * bw + 1)}" y="${f(top + ph - h)}" width="${f(Math.max(1, bw - 2))}" height="${f(h)}" fill="${PALETTE[0]}">` +
      `<title>${esc(`${edges[i].toPrecision(3)}–${edges[i + 1].toPrecision(3)}: ${c}`)}</title></rect>`;
  });
  const xt = edges
    .filter((_, i) => i % Math.ceil(edges.length / 6) === 0 || i === edges.length - 1)
    .map((e) => `<text x="${f(left + (pw * (e - edges[0])) / ((edges[edges.length - 1] - edges[0]) || 1))}" y="${top + ph + 16}" class="tk">${tickLabel(Number(e.toPrecision(3)))}</text>`);
  const yt = yTicks.map((v) => `<line x1="${left}" x2="${left + pw}" y1="${f(top + ph - (ph * v) / yMax)}" y2="${f(top + ph - (ph * v) / yMax)}" class="grid"/>` +
    `<text x="${left - 6}" y="${f(top + ph - (ph * v) / yMax + 4)}" class="yt">${tickLabel(v)}</text>`);
  return `<svg viewBox="0 0 ${width} ${height}" class="chart" role="img">${yt.join('')}${bars.join('')}` +
    `<line x1="${left}" x2="${left + pw}" y1="${top + ph}" y2="${top + ph}" class="axis"/>${xt.join('')}` +
    `<text x="${left + pw / 2}" y="${height - 6}" class="tk">${esc(xLabel)}</text></svg>`;
}
