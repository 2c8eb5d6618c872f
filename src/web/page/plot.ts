/// <reference lib="dom" />
// Line charts on a <canvas>: axes with round ticks, any number of series (lines or dots), a legend. Sized to the
// canvas's CSS box at the device pixel ratio, so it stays sharp.

export interface Series {
  label: string;
  color: string;
  points: readonly (readonly [number, number])[];
  /** 'line' (default), 'dots', or a dashed 'planned' reference line. */
  style?: 'line' | 'dots' | 'planned';
  width?: number;
  /** Leave out of the legend. */
  noLegend?: boolean;
}

export interface ChartOptions {
  title: string;
  xLabel?: string;
  /** Fixed x range (default: the data's). */
  x?: [number, number];
  /** Include these y values in the range (e.g. 0). */
  yInclude?: number[];
  /** Log-scale y (for the learning rate). */
  yLog?: boolean;
  format?: (v: number) => string;
}

/** Round tick values covering [lo, hi]: steps of 1, 2 or 5 × 10^k. */
export function ticks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Math.abs(v) < step * 1e-9 ? 0 : v);
  return out;
}

export const shortNumber = (v: number): string => {
  const a = Math.abs(v);
  if (a === 0) return '0';
  if (a >= 1e4 || a < 1e-3) return v.toExponential(1).replace('e+', 'e');
  return String(Number(v.toPrecision(3)));
};

export function drawChart(canvas: HTMLCanvasElement, series: Series[], o: ChartOptions): void {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || 600; const h = canvas.clientHeight || 260;
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr); canvas.height = Math.round(h * dpr);
  }
  const ctx = canvas.getContext('2d');
  if (!ctx) return;
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  ctx.fillStyle = '#ffffff'; ctx.fillRect(0, 0, w, h);
  const fmt = o.format ?? shortNumber;
  const pad = { l: 58, r: 14, t: 46, b: 34 };
  const pw = w - pad.l - pad.r; const ph = h - pad.t - pad.b;
  const all = series.flatMap((s) => s.points).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y) && (!o.yLog || y > 0));
  ctx.font = '12px system-ui, sans-serif'; ctx.textBaseline = 'middle';
  ctx.fillStyle = '#222'; ctx.textAlign = 'left';
  ctx.font = '600 13px system-ui, sans-serif';
  ctx.fillText(o.title, pad.l, 14);
  ctx.font = '12px system-ui, sans-serif';
  if (!all.length) {
    ctx.fillStyle = '#888'; ctx.textAlign = 'center'; ctx.fillText('no data yet', pad.l + pw / 2, pad.t + ph / 2);
    return;
  }
  let [x0, x1] = o.x ?? [Math.min(...all.map((p) => p[0])), Math.max(...all.map((p) => p[0]))];
  if (x1 <= x0) x1 = x0 + 1;
  const xm = (x1 - x0) * 0.015; x0 -= xm; x1 += xm; // room for the end points' markers
  const ty = (v: number): number => (o.yLog ? Math.log10(v) : v);
  const ys = [...all.map((p) => ty(p[1])), ...(o.yInclude ?? []).map(ty)];
  let y0 = Math.min(...ys); let y1 = Math.max(...ys);
  if (y1 - y0 < 1e-12 * Math.max(1, Math.abs(y1))) { const d = Math.abs(y1) * 0.05 || 1; y0 -= d; y1 += d; }
  const m = (y1 - y0) * 0.06; y0 -= m; y1 += m;
  const X = (x: number): number => pad.l + ((x - x0) / (x1 - x0)) * pw;
  const Y = (y: number): number => pad.t + (1 - (ty(y) - y0) / (y1 - y0)) * ph;

  // grid and axes
  ctx.strokeStyle = '#e6e6e6'; ctx.lineWidth = 1; ctx.fillStyle = '#555';
  const yt = o.yLog ? ticks(Math.floor(y0), Math.ceil(y1), Math.max(1, Math.min(5, Math.ceil(y1) - Math.floor(y0)))).filter((v) => Number.isInteger(v) && v >= y0 && v <= y1).map((v) => 10 ** v)
    : ticks(y0, y1, 5);
  ctx.textAlign = 'right';
  for (const v of yt) {
    const y = Y(v);
    ctx.beginPath(); ctx.moveTo(pad.l, y); ctx.lineTo(pad.l + pw, y); ctx.stroke();
    ctx.fillText(fmt(v), pad.l - 6, y);
  }
  ctx.textAlign = 'center'; ctx.textBaseline = 'top';
  for (const v of ticks(x0, x1, 6)) {
    const x = X(v);
    ctx.beginPath(); ctx.moveTo(x, pad.t); ctx.lineTo(x, pad.t + ph); ctx.stroke();
    ctx.fillText(shortNumber(v), x, pad.t + ph + 5);
  }
  if (o.xLabel) { ctx.fillStyle = '#777'; ctx.fillText(o.xLabel, pad.l + pw / 2, pad.t + ph + 19); }
  ctx.strokeStyle = '#999'; ctx.strokeRect(pad.l + 0.5, pad.t + 0.5, pw - 1, ph - 1);

  // series, clipped to the plot area
  ctx.save();
  ctx.beginPath(); ctx.rect(pad.l, pad.t, pw, ph); ctx.clip();
  for (const s of series) {
    const pts = s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y) && (!o.yLog || y > 0));
    ctx.strokeStyle = s.color; ctx.fillStyle = s.color;
    if (s.style === 'dots') {
      for (const [x, y] of pts) { ctx.beginPath(); ctx.arc(X(x), Y(y), 3.5, 0, 2 * Math.PI); ctx.fill(); }
      continue;
    }
    ctx.lineWidth = s.width ?? (s.style === 'planned' ? 1.5 : 2);
    ctx.setLineDash(s.style === 'planned' ? [5, 4] : []);
    ctx.globalAlpha = s.style === 'planned' ? 0.6 : 1;
    ctx.beginPath();
    pts.forEach(([x, y], i) => (i ? ctx.lineTo(X(x), Y(y)) : ctx.moveTo(X(x), Y(y))));
    if (pts.length === 1) { ctx.arc(X(pts[0][0]), Y(pts[0][1]), 2, 0, 2 * Math.PI); ctx.fill(); }
    ctx.stroke();
    ctx.setLineDash([]); ctx.globalAlpha = 1;
  }
  ctx.restore();

  // legend, a row under the title
  ctx.textAlign = 'left'; ctx.textBaseline = 'middle'; ctx.font = '12px system-ui, sans-serif';
  let lx = pad.l; const ly = 32;
  for (const s of series) {
    if (s.noLegend) continue;
    ctx.fillStyle = s.color; ctx.strokeStyle = s.color;
    if (s.style === 'dots') { ctx.beginPath(); ctx.arc(lx + 7, ly, 3.5, 0, 2 * Math.PI); ctx.fill(); } else {
      ctx.lineWidth = 2; ctx.setLineDash(s.style === 'planned' ? [4, 3] : []);
      ctx.beginPath(); ctx.moveTo(lx, ly); ctx.lineTo(lx + 14, ly); ctx.stroke(); ctx.setLineDash([]);
    }
    ctx.fillStyle = '#333'; ctx.fillText(s.label, lx + 19, ly);
    lx += 19 + ctx.measureText(s.label).width + 16;
  }
}
