// Reading and writing ModelProto files, with external data.
//
// Protobuf messages are limited to 2 GiB, so large models keep tensor bytes in side files
// (TensorProto.data_location = EXTERNAL, external_data = {location, offset, length}). We keep such tensors external
// on load unless asked, and can move large initializers out on save.
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  create, fromBinary, toBinary, ModelProtoSchema, StringStringEntryProtoSchema, TensorProto_DataLocation,
  type AttributeProto, type GraphProto, type ModelProto, type TensorProto,
} from './proto';

export class OnnxIOError extends Error {
  constructor(message: string) { super(message); this.name = 'OnnxIOError'; }
}

/** Decodes model bytes; `source` names the file in errors. */
export function decodeModel(bytes: Uint8Array, source = '<bytes>'): ModelProto {
  try {
    return fromBinary(ModelProtoSchema, bytes);
  } catch (e) {
    throw new OnnxIOError(`${source}: not a valid ONNX model (${(e as Error).message})`);
  }
}

export function encodeModel(model: ModelProto): Uint8Array {
  return toBinary(ModelProtoSchema, model);
}

export interface LoadOptions {
  /** Read external tensor data into raw_data (default false: tensors stay external and are read on demand). */
  loadExternalData?: boolean;
}

export function loadModel(file: string, opts: LoadOptions = {}): ModelProto {
  let bytes: Uint8Array;
  try {
    bytes = fs.readFileSync(file);
  } catch (e) {
    throw new OnnxIOError(`${file}: cannot read model (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  const model = decodeModel(bytes, file);
  if (opts.loadExternalData) internalizeExternalData(model, path.dirname(file), file);
  return model;
}

/** Every TensorProto of the model: graph initializers, Constant attributes, subgraphs and function bodies. */
export function* allTensors(model: ModelProto): Generator<TensorProto> {
  function* inGraph(g: GraphProto | undefined): Generator<TensorProto> {
    if (!g) return;
    yield* g.initializer;
    for (const s of g.sparseInitializer) { if (s.values) yield s.values; if (s.indices) yield s.indices; }
    for (const n of g.node) yield* inAttrs(n.attribute);
  }
  function* inAttrs(attrs: AttributeProto[]): Generator<TensorProto> {
    for (const a of attrs) {
      if (a.t) yield a.t;
      yield* a.tensors;
      if (a.g) yield* inGraph(a.g);
      for (const sg of a.graphs) yield* inGraph(sg);
    }
  }
  yield* inGraph(model.graph);
  for (const f of model.functions) for (const n of f.node) yield* inAttrs(n.attribute);
}

export interface ExternalRef { location: string; offset: number; length: number | undefined }

export function externalRef(t: TensorProto): ExternalRef | undefined {
  if (t.dataLocation !== TensorProto_DataLocation.EXTERNAL) return undefined;
  const kv = new Map(t.externalData.map((e) => [e.key, e.value]));
  const location = kv.get('location');
  if (!location) throw new OnnxIOError(`tensor '${t.name}': external data without a location`);
  const len = kv.get('length');
  return { location, offset: Number(kv.get('offset') ?? 0), length: len === undefined ? undefined : Number(len) };
}

/** Reads one tensor's external bytes (by offset, so files over 2 GiB work). */
export function readExternalData(t: TensorProto, baseDir: string, source = baseDir): Uint8Array<ArrayBuffer> {
  const ref = externalRef(t);
  if (!ref) throw new OnnxIOError(`tensor '${t.name}' is not stored externally`);
  const file = path.resolve(baseDir, ref.location);
  if (path.relative(baseDir, file).startsWith('..')) {
    throw new OnnxIOError(`${source}: tensor '${t.name}' points outside the model folder (${ref.location})`);
  }
  let fd: number;
  try { fd = fs.openSync(file, 'r'); } catch {
    throw new OnnxIOError(`${source}: external data file '${ref.location}' of tensor '${t.name}' is missing`);
  }
  try {
    const size = fs.fstatSync(fd).size;
    const length = ref.length ?? size - ref.offset;
    if (ref.offset + length > size) {
      throw new OnnxIOError(`${source}: tensor '${t.name}' wants bytes ${ref.offset}..${ref.offset + length} of ` +
        `'${ref.location}', which has ${size}`);
    }
    const out = new Uint8Array(new ArrayBuffer(length));
    let done = 0;
    while (done < length) {
      const n = fs.readSync(fd, out, done, Math.min(length - done, 1 << 30), ref.offset + done);
      if (n <= 0) throw new OnnxIOError(`${source}: short read in '${ref.location}'`);
      done += n;
    }
    return out;
  } finally { fs.closeSync(fd); }
}

function internalizeExternalData(model: ModelProto, baseDir: string, source: string): void {
  for (const t of allTensors(model)) {
    if (!externalRef(t)) continue;
    t.rawData = readExternalData(t, baseDir, source);
    t.externalData = [];
    t.dataLocation = TensorProto_DataLocation.DEFAULT;
  }
}

export interface SaveOptions {
  /** Move raw tensor data of at least `threshold` bytes (default 1024) into this file, beside the model. */
  externalData?: { location: string; threshold?: number; align?: number };
}

/** Writes a model, its tensor bytes in `<file>.data` past 1 GiB (protobuf messages stop at 2 GiB). */
export function saveModelSized(model: ModelProto, file: string): void {
  const bytes = model.graph!.initializer.reduce((a, t) => a + t.rawData.length, 0);
  saveModel(model, file, bytes > 1 << 30 ? { externalData: { location: `${path.basename(file)}.data` } } : {});
}

/**
 * Writes a model; with `externalData`, large tensors go to a side file (needed above 2 GiB).
 * Both files are written to temporary names and renamed, so a crash never leaves a half-written model.
 */
export function saveModel(model: ModelProto, file: string, opts: SaveOptions = {}): void {
  const dir = path.dirname(path.resolve(file));
  fs.mkdirSync(dir, { recursive: true });
  const restore: (() => void)[] = [];
  try {
    if (opts.externalData) {
      const { location, threshold = 1024, align = 4096 } = opts.externalData;
      if (path.isAbsolute(location) || location.includes('..')) {
        throw new OnnxIOError(`${file}: external data location must be a plain relative name, got '${location}'`);
      }
      const dataPath = path.join(dir, location);
      const tmpData = `${dataPath}.tmp-${process.pid}`;
      const fd = fs.openSync(tmpData, 'w');
      try {
        let offset = 0;
        for (const t of allTensors(model)) {
          if (externalRef(t)) throw new OnnxIOError(`${file}: tensor '${t.name}' is still external; load with loadExternalData`);
          const raw = t.rawData;
          if (!raw || raw.length < threshold) continue;
          const start = Math.ceil(offset / align) * align;
          if (start > offset) fs.writeSync(fd, new Uint8Array(start - offset), 0, start - offset, offset);
          let done = 0;
          while (done < raw.length) done += fs.writeSync(fd, raw, done, Math.min(raw.length - done, 1 << 30), start + done);
          offset = start + raw.length;
          // The caller's model is switched to external refs only while encoding (no copy of the data).
          const { dataLocation, externalData } = t;
          restore.push(() => { t.rawData = raw; t.dataLocation = dataLocation; t.externalData = externalData; });
          t.rawData = new Uint8Array(0);
          t.dataLocation = TensorProto_DataLocation.EXTERNAL;
          t.externalData = [
            create(StringStringEntryProtoSchema, { key: 'location', value: location }),
            create(StringStringEntryProtoSchema, { key: 'offset', value: String(start) }),
            create(StringStringEntryProtoSchema, { key: 'length', value: String(raw.length) }),
          ];
        }
        fs.fsyncSync(fd);
      } finally { fs.closeSync(fd); }
      fs.renameSync(tmpData, dataPath);
    }
    writeFileAtomic(file, encodeModel(model));
  } finally {
    for (const r of restore) r();
  }
}

/** temp file + fsync + rename: readers see the old file or the new one, never a torn one. */
export function writeFileAtomic(file: string, data: Uint8Array | Uint8Array[]): void {
  const tmp = `${file}.tmp-${process.pid}`;
  const fd = fs.openSync(tmp, 'w');
  try {
    for (const part of Array.isArray(data) ? data : [data]) {
      // at most 1 GiB a call: one write stops short of 2 GiB on Linux
      for (let done = 0; done < part.length;) done += fs.writeSync(fd, part, done, Math.min(part.length - done, 1 << 30));
    }
    fs.fsyncSync(fd);
  } finally { fs.closeSync(fd); }
  fs.renameSync(tmp, file);
  try { const dfd = fs.openSync(path.dirname(file), 'r'); fs.fsyncSync(dfd); fs.closeSync(dfd); } catch { /* best effort */ }
}
