// JSON files a user hands over (config.json, manifest.json): one error naming the file and what is wrong. JSON.parse's
// own message quotes the bytes around the fault, which can hold line breaks and binary: only the position is kept.
import * as fs from 'node:fs';

export class JsonFileError extends Error {
  constructor(message: string) { super(message); this.name = 'JsonFileError'; }
}

export function readJsonFile(file: string): unknown {
  let text: string;
  try { text = fs.readFileSync(file, 'utf8'); } catch (e) {
    throw new JsonFileError(`${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  try { return JSON.parse(text); } catch (e) {
    const at = /position (\d+)/.exec((e as Error).message);
    throw new JsonFileError(`${file}: not valid JSON${at ? ` (at character ${at[1]})` : ''}`);
  }
}

export const isJsonObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
