// A one-line progress bar on a terminal (step, loss, throughput, ETA); plain periodic lines when stderr is not a TTY.
export interface ProgressState { step: number; total: number; loss: number; itemsPerS: number; unit: string; evalLoss?: number }

const clock = (s: number): string => {
  if (!Number.isFinite(s)) return '--:--';
  s = Math.max(0, Math.round(s));
  const h = Math.floor(s / 3600); const m = Math.floor((s % 3600) / 60); const sec = s % 60;
  return (h ? `${h}:${String(m).padStart(2, '0')}` : String(m)) + ':' + String(sec).padStart(2, '0');
};
const rate = (v: number): string => (v >= 1e4 ? `${(v / 1e3).toFixed(1)}k` : v.toFixed(0));

export class Progress {
  private readonly tty: boolean;
  private lastPlain = 0;
  constructor(private readonly out: NodeJS.WriteStream = process.stderr, private readonly quiet = false) {
    this.tty = !!out.isTTY;
  }

  update(p: ProgressState, secsPerStep: number): void {
    if (this.quiet) return;
    const frac = p.step / p.total;
    const eta = clock((p.total - p.step) * secsPerStep);
    const info = `step ${p.step}/${p.total} loss ${p.loss.toFixed(4)}` + (p.evalLoss !== undefined ? ` val ${p.evalLoss.toFixed(4)}` : '') +
      ` ${rate(p.itemsPerS)} ${p.unit}/s ETA ${eta}`;
    if (this.tty) {
      const width = 24; const fill = Math.round(frac * width);
      this.out.write(`\r[${'#'.repeat(fill)}${'.'.repeat(width - fill)}] ${info}\x1b[K`);
    } else if (p.step === p.total || Date.now() - this.lastPlain > 5000) {
      this.lastPlain = Date.now();
      this.out.write(`${info}\n`);
    }
  }

  /** Ends the bar's line so other output starts on a fresh one. */
  line(msg: string): void {
    if (this.quiet) return;
    this.out.write((this.tty ? '\r\x1b[K' : '') + msg + '\n');
  }
}
