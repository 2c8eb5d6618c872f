// Line plots as standalone SVG (no dependencies): used for the live loss plot in a run directory, the HTML report
// and the experiment figures. Optional shaded bands (mean ± spread).
export interface Series { name: string; x: number[]; y: number[]; lo?: number[]; hi?: number[]; color?: string; dashed?: boolean }
export interface PlotOptions {
  title?: string; xLabel?: string; yLabel?: string; width?: number; height?: number; logY?: boolean;
  /** fixed y range (data units); lines and bands outside it are clipped to the plot area */
  yRange?: [number, number];
}

const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#7f7f7f'];
const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

function ticks(lo: number, hi: number, n = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? raw;
  const out: number[] = [];
  // snap accumulated rounding (6.9e-18) to the exact 0 tick
  for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-12; v += step) out.push(Math.abs(v) < step * 1e-6 ? 0 : +v.toPrecision(12));
  return out;
}
const fmt = (v: number): string => (Math.abs(v) >= 1e4 || (Math.abs(v) < 1e-3 && v !== 0) ? v.toExponential(1) : String(+v.toPrecision(4)));

/**
 * SVG `points` for a polyline in pixel coordinates, dropping points within half a pixel (both axes) of the last one
 * kept: long runs (100k-step paths) stay small files while spikes, which move in y, are kept. The last point stays.
 */
export function polyPoints(xy: [number, number][]): string {
  const out: string[] = [];
  let lx = NaN; let ly = NaN;
  xy.forEach(([x, y], i) => {
    if (i !== xy.length - 1 && Math.abs(x - lx) < 0.5 && Math.abs(y - ly) < 0.5) return;
    out.push(`${x.toFixed(1)},${y.toFixed(1)}`); lx = x; ly = y;
  });
  return out.join(' ');
}

export function linePlotSvg(series: Series[], o: PlotOptions = {}): string {
  const W = o.width ?? 720; const H = o.height ?? 420;
  const m = { l: 64, r: 16, t: o.title ? 34 : 14, b: 46 };
  const tf = (v: number): number => (o.logY ? Math.log10(Math.max(v, 1e-30)) : v);
  const xs = series.flatMap((s) => s.x); const ys = series.flatMap((s) => [...s.y, ...(s.lo ?? []), ...(s.hi ?? [])]).filter(Number.isFinite).map(tf);
  const x0 = xs.length ? Math.min(...xs) : 0; const x1 = xs.length ? Math.max(...xs) : 1;
  let y0 = ys.length ? Math.min(...ys) : 0; let y1 = ys.length ? Math.max(...ys) : 1;
  if (o.yRange) { y0 = tf(o.yRange[0]); y1 = tf(o.yRange[1]); }
  if (y1 - y0 < 1e-12) { y0 -= 0.5; y1 += 0.5; }
  if (!o.yRange) { const pad = (y1 - y0) * 0.05; y0 -= pad; y1 += pad; }
  const px = (x: number): number => m.l + ((x - x0) / (x1 - x0 || 1)) * (W - m.l - m.r);
  const py = (y: number): number => H - m.b - ((tf(y) - y0) / (y1 - y0)) * (H - m.t - m.b);
  const parts: string[] = [`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`];
  if (o.title) parts.push(`<text x="${W / 2}" y="20" text-anchor="middle" font-size="14">${esc(o.title)}</text>`);
  for (const t of ticks(x0, x1)) parts.push(`<line x1="${px(t)}" x2="${px(t)}" y1="${m.t}" y2="${H - m.b}" stroke="#eee"/><text x="${px(t)}" y="${H - m.b + 16}" text-anchor="middle">${fmt(t)}</text>`);
  for (const t of ticks(y0, y1)) {
    const y = H - m.b - ((t - y0) / (y1 - y0)) * (H - m.t - m.b);
    parts.push(`<line x1="${m.l}" x2="${W - m.r}" y1="${y}" y2="${y}" stroke="#eee"/><text x="${m.l - 6}" y="${y + 4}" text-anchor="end">${o.logY ? fmt(10 ** t) : fmt(t)}</text>`);
  }
  parts.push(`<rect x="${m.l}" y="${m.t}" width="${W - m.l - m.r}" height="${H - m.t - m.b}" fill="none" stroke="#444"/>`);
  if (o.xLabel) parts.push(`<text x="${(W + m.l) / 2}" y="${H - 8}" text-anchor="middle">${esc(o.xLabel)}</text>`);
  if (o.yLabel) parts.push(`<text transform="translate(14 ${(H - m.b + m.t) / 2}) rotate(-90)" text-anchor="middle">${esc(o.yLabel)}</text>`);
  parts.push(`<clipPath id="area"><rect x="${m.l}" y="${m.t}" width="${W - m.l - m.r}" height="${H - m.t - m.b}"/></clipPath>`);
  series.forEach((s, k) => {
    const color = s.color ?? PALETTE[k % PALETTE.length];
    if (s.lo && s.hi) {
      const up = s.x.map((x, i) => `${px(x).toFixed(1)},${py(s.hi![i]).toFixed(1)}`);
      const down = s.x.map((x, i) => `${px(x).toFixed(1)},${py(s.lo![i]).toFixed(1)}`).reverse();
      parts.push(`<polygon clip-path="url(#area)" points="${[...up, ...down].join(' ')}" fill="${color}" fill-opacity="0.15" stroke="none"/>`);
    }
    const pts = polyPoints(s.x.flatMap((x, i): [number, number][] => (Number.isFinite(s.y[i]) ? [[px(x), py(s.y[i])]] : [])));
    parts.push(`<polyline clip-path="url(#area)" points="${pts}" fill="none" stroke="${color}" stroke-width="1.6"${s.dashed ? ' stroke-dasharray="5 3"' : ''}/>`);
    parts.push(`<line x1="${W - m.r - 150}" x2="${W - m.r - 130}" y1="${m.t + 14 + 16 * k}" y2="${m.t + 14 + 16 * k}" stroke="${color}" stroke-width="2"/>` +
      `<text x="${W - m.r - 126}" y="${m.t + 18 + 16 * k}">${esc(s.name)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n');
}
