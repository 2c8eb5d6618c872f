// The x–y plane of a 2-D objective with optimizer paths drawn over a shaded log10(f) background (a coarse heat map
// stands in for contour lines). Equal scale on both axes, so the valley's shape is not distorted.
import { polyPoints } from '../runner/plot';

export interface Path2D { name: string; x: number[]; y: number[]; color?: string }
export interface PlanePlotOptions {
  f: (x: number, y: number) => number;
  xRange: [number, number]; yRange: [number, number];
  title?: string; width?: number; cells?: number;
  /** marked points, e.g. start and optimum */
  marks?: { x: number; y: number; label: string }[];
}

const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf'];
const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

export function planePlotSvg(paths: Path2D[], o: PlanePlotOptions): string {
  const [x0, x1] = o.xRange; const [y0, y1] = o.yRange;
  const m = { l: 48, r: 190, t: o.title ? 34 : 12, b: 40 };
  const pw = (o.width ?? 760) - m.l - m.r; const ph = Math.round((pw * (y1 - y0)) / (x1 - x0));
  const W = pw + m.l + m.r; const H = ph + m.t + m.b;
  const px = (x: number): number => m.l + ((x - x0) / (x1 - x0)) * pw;
  const py = (y: number): number => m.t + ph - ((y - y0) / (y1 - y0)) * ph;
  const out = [`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`];
  if (o.title) out.push(`<text x="${m.l + pw / 2}" y="20" text-anchor="middle" font-size="14">${esc(o.title)}</text>`);
  // background: gray level from log10 f, banded into steps of 0.5 decades so the bands read like contours
  const nx = o.cells ?? 90; const ny = Math.max(1, Math.round((nx * ph) / pw));
  const cw = pw / nx; const ch = ph / ny;
  const lv: number[] = [];
  for (let j = 0; j < ny; j++) for (let i = 0; i < nx; i++) {
    lv.push(Math.log10(Math.max(o.f(x0 + ((i + 0.5) / nx) * (x1 - x0), y1 - ((j + 0.5) / ny) * (y1 - y0)), 1e-12)));
  }
  const lmin = Math.min(...lv); const lmax = Math.max(...lv);
  // one rect per horizontal run of equal shade (the bands make runs long; a rect per cell made 1 MB files)
  const shades = lv.map((l) => Math.round(255 - 110 * ((Math.floor(l * 2) / 2 - lmin) / Math.max(lmax - lmin, 1e-9))));
  for (let j = 0; j < ny; j++) {
    for (let i = 0; i < nx;) {
      const shade = shades[j * nx + i];
      let e = i + 1;
      while (e < nx && shades[j * nx + e] === shade) e++;
      out.push(`<rect x="${(m.l + i * cw).toFixed(1)}" y="${(m.t + j * ch).toFixed(1)}" width="${((e - i) * cw + 0.4).toFixed(1)}" height="${(ch + 0.4).toFixed(1)}" fill="rgb(${shade},${shade},${Math.min(255, shade + 12)})"/>`);
      i = e;
    }
  }
  const tick = (lo: number, hi: number): number[] => {
    const step = [0.5, 1, 2, 5].find((s) => (hi - lo) / s <= 10) ?? 10;
    const r: number[] = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-9; v += step) r.push(+v.toFixed(6));
    return r;
  };
  for (const t of tick(x0, x1)) out.push(`<text x="${px(t)}" y="${m.t + ph + 16}" text-anchor="middle">${t}</text>`);
  for (const t of tick(y0, y1)) out.push(`<text x="${m.l - 6}" y="${py(t) + 4}" text-anchor="end">${t}</text>`);
  out.push(`<rect x="${m.l}" y="${m.t}" width="${pw}" height="${ph}" fill="none" stroke="#444"/>`);
  out.push(`<text x="${m.l + pw / 2}" y="${H - 8}" text-anchor="middle">x</text><text x="14" y="${m.t + ph / 2}" text-anchor="middle">y</text>`);
  out.push(`<clipPath id="plane"><rect x="${m.l}" y="${m.t}" width="${pw}" height="${ph}"/></clipPath>`);
  paths.forEach((p, k) => {
    const color = p.color ?? PALETTE[k % PALETTE.length];
    const pts = polyPoints(p.x.map((x, i): [number, number] => [px(x), py(p.y[i])]));
    out.push(`<polyline clip-path="url(#plane)" points="${pts}" fill="none" stroke="${color}" stroke-width="1.4" stroke-opacity="0.9"/>`);
    out.push(`<line x1="${m.l + pw + 12}" x2="${m.l + pw + 32}" y1="${m.t + 12 + 16 * k}" y2="${m.t + 12 + 16 * k}" stroke="${color}" stroke-width="2"/>` +
      `<text x="${m.l + pw + 36}" y="${m.t + 16 + 16 * k}">${esc(p.name)}</text>`);
  });
  for (const mk of o.marks ?? []) {
    out.push(`<circle cx="${px(mk.x)}" cy="${py(mk.y)}" r="4" fill="black"/><text x="${px(mk.x) + 6}" y="${py(mk.y) - 6}">${esc(mk.label)}</text>`);
  }
  out.push('</svg>');
  return out.join('\n');
}
