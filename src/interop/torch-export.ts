// Undoes what torch.onnx.export's defaults do to parameters, so that every torch parameter is one initializer
// named by its state_dict key, in torch's layout, used wherever the model uses it. Runs on the ModelProto before
// import. What the exporters do, and what is undone:
//
// dynamo (the default exporter; onnxscript's optimizer on, static shapes). The graph carries the exported
// program's signature (graph metadata `pkg.torch.export.ExportedProgram.graph_signature`: every parameter and
// buffer placeholder with its FQN) and each node the FX node it came from (`pkg.torch.onnx.fx_node`, naming the
// placeholders it read) and its module scope (`pkg.torch.onnx.name_scopes`). From these:
// - folded `weight.T` (aten.linear → MatMul with a constant-folded Transpose, named `val_N`): the weight comes
//   back in torch's layout under its FQN, with a Transpose node in the graph;
// - initializers the optimizer merged because their values were equal (fresh LayerNorm weights, zero biases): each
//   parameter gets its own copy again (a real tie is one placeholder and stays one tensor);
// - zero biases the optimizer dropped (Gemm without C, MatMul without its Add): restored as zeros;
// - a parameter broadcast by a folded Expand (a ViT's class token, `expand(B, -1, -1)` with a static B): the
//   parameter comes back with an Expand node, when its values show the broadcast;
// - a parameter tied to another (GPT-2's wte and lm_head) keeps both state_dict keys.
// What cannot be undone (a folded slice of a parameter, such as `wpe(arange(T))` for T below the table's length:
// the other rows are not in the file) is reported as a missing parameter with the reason and the fix.
//
// TorchScript (`dynamo=False`, constant folding on): folded `weight.T` initializers (`onnx::MatMul_N`) are tied
// back to the parameter they transpose when one has those values (a tied LM head), and otherwise named from their
// consumer's scope (`/m/lm_head/MatMul` → `m.lm_head.weight`). The de-duplication behind Identity nodes is undone by
// the importer.
import { fromTensorProto, toTensorProto, transpose2d, type TensorData } from '../graph/tensor-data';
import {
  clone, create, ModelProtoSchema, NodeProtoSchema, AttributeProtoSchema, AttributeProto_AttributeType as AT,
  type ModelProto, type NodeProto, type TensorProto,
} from '../onnx/proto';
import type { TorchParamMap, TorchTensorEntry } from './params';

const SIGNATURE_KEY = 'pkg.torch.export.ExportedProgram.graph_signature';
const FX_KEY = 'pkg.torch.onnx.fx_node';
const SCOPES_KEY = 'pkg.torch.onnx.name_scopes';
const FLOAT = 1;

export interface TorchExportInfo {
  exporter: 'dynamo' | 'torchscript';
  /** The parameters as the ONNX graph now holds them: initializer name (= FQN) and every state_dict key. */
  params: TorchTensorEntry[];
  /** Buffers held as initializers. */
  buffers: TorchTensorEntry[];
  /** Initializers that are neither (constants the exporter computed), with what they are. */
  constants: Map<string, string>;
  /** torch parameters the graph does not hold, with the reason. */
  missing: { name: string; reason: string }[];
  /** persistent buffers (state_dict entries) the graph does not hold. */
  missingBuffers: string[];
  /** What was changed, for the user. */
  notes: string[];
  /** More state_dict keys of an initializer (a tie found in a TorchScript export). */
  aliases: Map<string, string[]>;
}

interface SigEntry { kind: string; target: string; persistent: boolean }

function parseSignature(text: string): Map<string, SigEntry> {
  const sig = new Map<string, SigEntry>();
  const inputs = text.split('# outputs')[0];
  for (const line of inputs.split('\n')) {
    const m = /^\s*(\w+): ([A-Z_]+)(?: target='([^']*)')?(.*)$/.exec(line);
    if (m && m[3] !== undefined) sig.set(m[1], { kind: m[2], target: m[3], persistent: !/persistent=False/.test(m[4]) });
  }
  return sig;
}

const meta = (n: NodeProto, key: string): string | undefined => n.metadataProps.find((p) => p.key === key)?.value;
const moduleOf = (fqn: string): string => fqn.slice(0, Math.max(0, fqn.lastIndexOf('.')));
const attrOf = (fqn: string): string => fqn.slice(fqn.lastIndexOf('.') + 1);
const within = (scope: string, module: string): boolean => module === scope || module.startsWith(`${scope}.`);

function sameValues(a: TensorData, b: TensorData): boolean {
  if (a.dims.length !== b.dims.length || a.dims.some((d, i) => d !== b.dims[i])) return false;
  const x = a.data as Float32Array; const y = b.data as Float32Array;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i] && !(Number.isNaN(x[i]) && Number.isNaN(y[i]))) return false;
  return true;
}

/** The one slice of `t` along axis 0 when every slice is equal (a folded broadcast), else null. */
function unbroadcast0(t: TensorData): TensorData | null {
  const n = t.dims[0];
  if (t.dims.length < 2 || n < 2) return null;
  const per = t.data.length / n;
  const x = t.data as Float32Array;
  for (let k = 1; k < n; k++) for (let i = 0; i < per; i++) if (x[k * per + i] !== x[i]) return null;
  return { dtype: t.dtype, dims: [1, ...t.dims.slice(1)], data: x.slice(0, per) };
}

const intAttr = (n: NodeProto, name: string, d: number): number => {
  const a = n.attribute.find((x) => x.name === name);
  return a ? Number(a.i) : d;
};

class Rewriter {
  readonly model: ModelProto;
  readonly inits = new Map<string, TensorProto>();
  readonly notes: string[] = [];
  private readonly prelude: NodeProto[] = [];
  private uid = 0;

  constructor(model: ModelProto) {
    this.model = clone(ModelProtoSchema, model);
    for (const t of this.model.graph!.initializer) this.inits.set(t.name, t);
  }

  get nodes(): NodeProto[] { return this.model.graph!.node; }

  data(name: string): TensorData { return fromTensorProto(this.inits.get(name)!); }

  isFloatInit(name: string): boolean { return this.inits.get(name)?.dataType === FLOAT; }

  fresh(base: string): string {
    let s: string;
    do s = `${base}__${this.uid++}`; while (this.inits.has(s));
    return s;
  }

  addInit(name: string, t: TensorData): void {
    const p = toTensorProto(name, t);
    const old = this.inits.get(name);
    if (old) this.model.graph!.initializer.splice(this.model.graph!.initializer.indexOf(old), 1, p);
    else this.model.graph!.initializer.push(p);
    this.inits.set(name, p);
  }

  /** A node computed from initializers only, placed before every other node. */
  addPrelude(opType: string, inputs: string[], output: string, attrs: { name: string; ints: number[] }[] = []): void {
    this.prelude.push(create(NodeProtoSchema, {
      opType, input: inputs, output: [output], name: `${output}/${opType}`,
      attribute: attrs.map((a) => create(AttributeProtoSchema, { name: a.name, type: AT.INTS, ints: a.ints.map(BigInt) })),
    }));
  }

  /** Drops initializers no node, output or function reads any more. */
  finish(): ModelProto {
    const g = this.model.graph!;
    g.node.unshift(...this.prelude);
    this.prelude.length = 0;
    const used = new Set<string>(g.output.map((o) => o.name));
    for (const n of g.node) for (const i of n.input) used.add(i);
    g.initializer = g.initializer.filter((t) => used.has(t.name));
    g.input = g.input.filter((i) => !this.inits.has(i.name) || used.has(i.name));
    return this.model;
  }
}

interface Use { node: NodeProto; index: number; init: string }
interface FxGroup { name: string; target: string; params: string[]; nodes: NodeProto[]; scope: string }

/** dynamo exports: see the file comment. */
function canonicalizeDynamo(r: Rewriter, sig: Map<string, SigEntry>): TorchExportInfo {
  const constants = new Map<string, string>();
  const missing: { name: string; reason: string }[] = [];
  const paramTargets = new Map<string, string>(); // placeholder → FQN
  for (const [ph, e] of sig) if (e.kind === 'PARAMETER') paramTargets.set(ph, e.target);

  // FX groups: the ONNX nodes one FX node became, with the parameter placeholders it read (in argument order)
  const groups = new Map<string, FxGroup>();
  for (const n of r.nodes) {
    const fx = meta(n, FX_KEY);
    if (!fx) continue;
    const name = /^%(\w+)/.exec(fx)?.[1];
    if (!name) continue;
    let gr = groups.get(name);
    if (!gr) {
      const argText = fx.slice(fx.indexOf('args = ') + 7);
      const params = [...argText.matchAll(/%(\w+)/g)].map((m) => m[1]).filter((p) => paramTargets.has(p));
      const scopes = [...(meta(n, SCOPES_KEY) ?? '').matchAll(/'([^']*)'/g)].map((m) => m[1]);
      gr = { name, target: /target=([\w.]+)/.exec(fx)?.[1] ?? '', params: [...new Set(params)], nodes: [], scope: scopes.length >= 2 ? scopes[scopes.length - 2] : '' };
      groups.set(name, gr);
    }
    gr.nodes.push(n);
  }

  // match each initializer use inside a group to one of the group's parameters
  const uses = new Map<string, { use: Use; transposed: boolean }[]>(); // FQN → uses
  const restore: { group: FxGroup; fqn: string }[] = [];
  const referenced = new Set<string>();
  for (const gr of groups.values()) {
    if (!gr.params.length) continue;
    gr.params.forEach((p) => referenced.add(p));
    const found: Use[] = [];
    for (const node of gr.nodes) node.input.forEach((init, index) => { if (r.isFloatInit(init)) found.push({ node, index, init }); });
    const open = new Set(gr.params);
    const matched: { use: Use; ph: string }[] = [];
    const rest: Use[] = [];
    for (const u of found) {
      const ph = [...open].find((p) => paramTargets.get(p) === u.init)
        ?? [...paramTargets.keys()].find((p) => paramTargets.get(p) === u.init && gr.params.includes(p));
      if (ph) { matched.push({ use: u, ph }); continue; }
      rest.push(u);
    }
    for (const m of matched) open.delete(m.ph);
    // the rest by role (biases with rank-1 tensors, the others with the others), else in argument order
    const isBias = (p: string): boolean => /bias$/.test(p);
    const rank = (u: Use): number => r.inits.get(u.init)!.dims.length;
    const ps = [...open];
    const parts = [true, false].map((b) => ({ ps: ps.filter((p) => isBias(p) === b), us: rest.filter((u) => (rank(u) === 1) === b) }));
    if (parts.every((p) => p.ps.length === p.us.length || p.us.length === 0)) {
      for (const p of parts) if (p.ps.length === p.us.length) p.ps.forEach((ph, i) => { matched.push({ use: p.us[i], ph }); open.delete(ph); });
    } else if (ps.length === rest.length) {
      ps.forEach((ph, i) => { matched.push({ use: rest[i], ph }); open.delete(ph); });
    } else if (rest.length) {
      for (const p of ps) missing.push({ name: paramTargets.get(p)!, reason: `cannot tell which of ${rest.map((u) => `'${u.init}'`).join(', ')} it is (FX node ${gr.name})` });
      ps.forEach((p) => open.delete(p));
    }
    for (const { use, ph } of matched) {
      const fqn = paramTargets.get(ph)!;
      // aten.linear's weight is [out, in]; MatMul (and Gemm without transB) read it as [in, out]
      const op = use.node.opType;
      const transposed = gr.target === 'torch.ops.aten.linear.default' && use.index === 1 && rank(use) === 2 && use.init !== fqn
        && (op === 'MatMul' || (op === 'Gemm' && intAttr(use.node, 'transB', 0) === 0));
      if (!uses.has(fqn)) uses.set(fqn, []);
      uses.get(fqn)!.push({ use, transposed });
    }
    for (const p of open) restore.push({ group: gr, fqn: paramTargets.get(p)! });
  }

  // one initializer per parameter, in torch's layout, under its FQN
  const params = new Map<string, TorchTensorEntry>();
  const replaced = new Set<string>();
  for (const [fqn, us] of uses) {
    const first = us[0];
    const canon = first.transposed ? transpose2d(r.data(first.use.init)) : r.data(first.use.init);
    let consistent = true;
    for (const u of us.slice(1)) {
      const d = u.transposed ? transpose2d(r.data(u.use.init)) : r.data(u.use.init);
      if (!sameValues(d, canon)) consistent = false;
    }
    if (!consistent) {
      missing.push({ name: fqn, reason: `its uses read initializers with different values (${[...new Set(us.map((u) => u.use.init))].join(', ')})` });
      continue;
    }
    const moved = us.some((u) => u.use.init !== fqn || u.transposed);
    if (moved) {
      const shared = us.some((u) => [...uses].some(([f, vs]) => f !== fqn && vs.some((v) => v.use.init === u.use.init)));
      const from = [...new Set(us.map((u) => u.use.init))].filter((x) => x !== fqn).join(', ');
      if (shared) r.notes.push(`'${fqn}' had been merged by the exporter with other parameters of equal value (into '${from}'); it is its own tensor again`);
      else if (us.some((u) => u.transposed)) r.notes.push(`'${fqn}' was stored transposed by the exporter as '${from}'; it trains in torch's layout`);
      else r.notes.push(`'${fqn}' was stored by the exporter as '${from}'`);
      us.forEach((u) => replaced.add(u.use.init));
    }
    if (!r.inits.has(fqn) || moved) r.addInit(fqn, canon);
    let tName: string | null = null;
    for (const u of us) {
      if (!u.transposed) { u.use.node.input[u.use.index] = fqn; continue; }
      if (!tName) { tName = r.fresh(`${fqn}.T`); r.addPrelude('Transpose', [fqn], tName, [{ name: 'perm', ints: [1, 0] }]); }
      u.use.node.input[u.use.index] = tName;
    }
    params.set(fqn, { onnx: fqn, torch: [fqn] });
  }

  // parameters the optimizer dropped because they were zero (biases): back as zeros
  for (const { group, fqn } of restore) {
    if (params.has(fqn)) continue;
    if (!/bias$/.test(fqn)) { missing.push({ name: fqn, reason: `its FX node ${group.name} (${group.target}) reads it, but no initializer of that node is it` }); continue; }
    const dimsOf = (name: string): number[] | undefined => r.inits.get(name)?.dims.map(Number)
      ?? r.inits.get(r.nodes.find((n) => n.output[0] === name && n.opType === 'Transpose')?.input[0] ?? '')?.dims.map(Number).reverse();
    let done = false;
    for (const n of group.nodes) {
      if (n.opType === 'Gemm' && !n.input[2]) {
        const b = dimsOf(n.input[1]);
        if (!b) continue;
        const N = intAttr(n, 'transB', 0) ? b[0] : b[1];
        r.addInit(fqn, { dtype: 'float32', dims: [N], data: new Float32Array(N) }); n.input[2] = fqn; done = true; break;
      }
      if ((n.opType === 'Conv' || n.opType === 'LayerNormalization') && !n.input[2]) {
        const w = dimsOf(n.input[1]);
        if (!w) continue;
        const N = n.opType === 'Conv' ? w[0] : w.reduce((a, d) => a * d, 1);
        r.addInit(fqn, { dtype: 'float32', dims: n.opType === 'Conv' ? [N] : w, data: new Float32Array(N) }); n.input[2] = fqn; done = true; break;
      }
      if (n.opType === 'MatMul') {
        const b = dimsOf(n.input[1]);
        if (!b || b.length !== 2) continue;
        const out = n.output[0];
        const pre = `${out}__nobias`;
        n.output[0] = pre;
        const g = r.model.graph!;
        g.node.splice(g.node.indexOf(n) + 1, 0, create(NodeProtoSchema, { opType: 'Add', input: [pre, fqn], output: [out], name: `${out}/bias` }));
        r.addInit(fqn, { dtype: 'float32', dims: [b[1]], data: new Float32Array(b[1]) }); done = true; break;
      }
    }
    if (done) { params.set(fqn, { onnx: fqn, torch: [fqn] }); r.notes.push(`'${fqn}' was dropped by the exporter (a zero bias); restored as zeros`); }
    else missing.push({ name: fqn, reason: `its FX node ${group.name} (${group.target}) reads it, but the exported graph dropped it` });
  }

  // initializers no parameter or buffer claims: constants the exporter computed
  const bufferTargets = new Map<string, SigEntry>();
  for (const e of sig.values()) if (e.kind !== 'PARAMETER' && e.kind !== 'USER_INPUT') bufferTargets.set(e.target, e);
  const orphanUses = (name: string): NodeProto[] => r.nodes.filter((n) => n.input.includes(name));
  const orphans = [...r.inits.values()].filter((t) => t.dataType === FLOAT && !params.has(t.name) && !replaced.has(t.name) && !bufferTargets.has(t.name));

  // parameters no FX node reads: tied to another, broadcast by a folded Expand, or gone
  for (const [ph, fqn] of paramTargets) {
    if (referenced.has(ph) || params.has(fqn) || missing.some((m) => m.name === fqn)) continue;
    const mod = moduleOf(fqn);
    // a tie: a node of this parameter's module reads a parameter of another module with the same attribute name
    const tie = [...groups.values()].find((gr) => gr.scope === mod && gr.params.some((p) => {
      const t = paramTargets.get(p)!; return !within(mod, moduleOf(t)) && attrOf(t) === attrOf(fqn) && params.has(t);
    }));
    if (tie) {
      const other = tie.params.map((p) => paramTargets.get(p)!).find((t) => params.has(t) && attrOf(t) === attrOf(fqn))!;
      params.get(other)!.torch.push(fqn);
      r.notes.push(`'${fqn}' is tied to '${other}' (one tensor, both state_dict keys)`);
      continue;
    }
    // a folded broadcast: one orphan constant read in this parameter's module (or a parent), equal along axis 0
    const cands = orphans.filter((t) => orphanUses(t.name).some((n) => {
      const s = [...(meta(n, SCOPES_KEY) ?? '').matchAll(/'([^']*)'/g)].map((m) => m[1]);
      const scope = s.length >= 2 ? s[s.length - 2] : '';
      // read in the parameter's module or a parent of it (the root only for a parameter of the root)
      return scope === mod || (scope !== '' && within(scope, mod));
    }));
    const broadcast = cands.map((t) => ({ t, one: unbroadcast0(fromTensorProto(t)) })).filter((c) => c.one);
    if (cands.length === 1 && broadcast.length === 1) {
      const { t, one } = broadcast[0];
      const shapeName = r.fresh(`${fqn}.expand_shape`);
      r.addInit(shapeName, { dtype: 'int64', dims: [t.dims.length], data: BigInt64Array.from(t.dims) });
      const expanded = r.fresh(`${fqn}.expanded`);
      r.addInit(fqn, one!);
      r.addPrelude('Expand', [fqn, shapeName], expanded);
      for (const n of orphanUses(t.name)) n.input.forEach((x, i) => { if (x === t.name) n.input[i] = expanded; });
      orphans.splice(orphans.indexOf(t), 1);
      params.set(fqn, { onnx: fqn, torch: [fqn] });
      r.notes.push(`'${fqn}' had been broadcast by a folded Expand into '${t.name}' [${t.dims.join(',')}]; it trains as [${one!.dims.join(',')}]`);
      continue;
    }
    const hint = cands.length ? ` (the exporter folded the computation that reads it into the constant${cands.length > 1 ? 's' : ''} ${cands.map((t) => `'${t.name}' [${t.dims.join(',')}]`).join(', ')}, e.g. a slice for a static sequence length)` : '';
    missing.push({ name: fqn, reason: `the exported graph does not hold it${hint || ' (no node reads it: folded into a constant with static shapes, or unused by the forward pass)'}` });
  }
  for (const t of orphans) constants.set(t.name, 'a constant the exporter computed (folded from buffers or constants)');

  const buffers: TorchTensorEntry[] = [];
  const missingBuffers: string[] = [];
  for (const e of sig.values()) {
    if (e.kind !== 'BUFFER') continue;
    if (r.inits.has(e.target)) { buffers.push({ onnx: e.target, torch: e.persistent ? [e.target] : [] }); constants.set(e.target, 'a buffer'); }
    else if (e.persistent) missingBuffers.push(e.target);
  }
  for (const e of sig.values()) if (e.kind === 'CONSTANT_TENSOR' && r.inits.has(e.target)) constants.set(e.target, 'a constant tensor of the model');
  return { exporter: 'dynamo', params: [...params.values()], buffers, constants, missing, missingBuffers, notes: r.notes, aliases: new Map() };
}

/** TorchScript exports: folded transposed weights (`onnx::MatMul_N`) back to their parameter. */
function canonicalizeTorchScript(r: Rewriter): TorchExportInfo {
  const constants = new Map<string, string>();
  const aliases = new Map<string, string[]>();
  // '/m/transformer/h.0/ln_1/LayerNormalization' → 'm.transformer.h.0.ln_1'; a Sequential's child is named with its
  // parent ('/blocks/blocks.0/…' → 'blocks.0'); containers that are not called (ModuleDict) leave no segment
  const scopeOf = (n: NodeProto): string => {
    if (!n.name.startsWith('/')) return '';
    const segs: string[] = [];
    for (const s of n.name.split('/').slice(1, -1)) {
      if (segs.length && s.startsWith(`${segs[segs.length - 1]}.`)) segs[segs.length - 1] = s; else segs.push(s);
    }
    return segs.join('.');
  };
  // what the uncalled containers add in front of a scope, learnt from initializers that kept their names
  const prefixes = new Map<string, Set<string>>();
  for (const n of r.nodes) {
    const sc = scopeOf(n);
    if (!sc) continue;
    for (const i of n.input) {
      if (!r.isFloatInit(i) || /^onnx::/.test(i)) continue;
      const mod = moduleOf(i);
      if (mod !== sc && !mod.endsWith(`.${sc}`)) continue;
      const first = sc.split('.')[0];
      if (!prefixes.has(first)) prefixes.set(first, new Set());
      prefixes.get(first)!.add(mod.slice(0, mod.length - sc.length));
    }
  }
  const fqnOf = (sc: string): string => {
    const p = prefixes.get(sc.split('.')[0]);
    return `${p && p.size === 1 ? [...p][0] : ''}${sc}`;
  };
  for (const t of [...r.inits.values()]) {
    if (t.dataType !== FLOAT || t.dims.length !== 2 || !/^onnx::/.test(t.name)) continue;
    const consumers = r.nodes.filter((n) => n.input.includes(t.name));
    if (!consumers.length || !consumers.every((n) => n.opType === 'MatMul' && n.input[1] === t.name)) continue;
    const w = transpose2d(fromTensorProto(t));
    const tie = [...r.inits.values()].find((o) => o !== t && o.dataType === FLOAT && !/^onnx::/.test(o.name) && sameValues(fromTensorProto(o), w));
    let fqn: string;
    if (tie) {
      fqn = tie.name;
      const scopes = [...new Set(consumers.map(scopeOf))];
      const alias = scopes.length === 1 && scopes[0] ? `${fqnOf(scopes[0])}.weight` : '';
      if (alias && alias !== fqn && !r.inits.has(alias)) aliases.set(fqn, [...(aliases.get(fqn) ?? []), alias]);
      r.notes.push(`'${t.name}' is '${fqn}' transposed (a tied weight folded by the exporter); both uses train '${fqn}'`);
    } else {
      const scopes = [...new Set(consumers.map(scopeOf))];
      if (scopes.length !== 1 || !scopes[0] || r.inits.has(`${fqnOf(scopes[0])}.weight`)) continue;
      fqn = `${fqnOf(scopes[0])}.weight`;
      r.addInit(fqn, w);
      r.notes.push(`'${t.name}' is '${fqn}' transposed by the exporter's constant folding; it trains as '${fqn}' in torch's layout`);
    }
    const tName = r.fresh(`${fqn}.T`);
    r.addPrelude('Transpose', [fqn], tName, [{ name: 'perm', ints: [1, 0] }]);
    for (const n of consumers) n.input[1] = tName;
  }
  return { exporter: 'torchscript', params: [], buffers: [], constants, missing: [], missingBuffers: [], notes: r.notes, aliases };
}

/** A model written by torch.onnx.export: which exporter, from the metadata both leave. */
export function torchExporter(model: ModelProto): 'dynamo' | 'torchscript' | null {
  const g = model.graph;
  if (!g) return null;
  if (g.metadataProps.some((p) => p.key === SIGNATURE_KEY)) return 'dynamo';
  if (model.producerName === 'pytorch' && g.node.some((n) => n.name.startsWith('/'))) return 'torchscript';
  return null;
}

/**
 * Parameters the file does not hold, recovered by value from the model's own state_dict (`--torch-state`): a folded
 * constant that equals the first rows of a parameter (position embeddings read as `wpe(arange(T))` with a static T),
 * all of it, or a broadcast of it becomes that computation on the parameter again.
 */
function recoverFromState(r: Rewriter, info: TorchExportInfo, state: Map<string, TensorData>): void {
  const wanted = info.exporter === 'dynamo'
    ? info.missing.map((m) => m.name).filter((n) => state.has(n))
    : [...state.keys()].filter((k) => !r.inits.has(k) && state.get(k)!.dtype === 'float32');
  const orphans = [...r.inits.values()].filter((t) => t.dataType === FLOAT && (info.exporter === 'dynamo' ? info.constants.has(t.name) && info.constants.get(t.name)!.startsWith('a constant the exporter') : /^onnx::/.test(t.name)));
  for (const name of wanted) {
    const p = state.get(name)!;
    if (p.dims.length < 1 || !p.dims[0]) continue;
    const row = p.data.length / p.dims[0];
    const pd = p.data as Float32Array;
    if (pd.every((x) => x === pd[0])) continue; // a constant tensor (zeros, ones) cannot be told apart by value
    for (const o of orphans) {
      const od = fromTensorProto(o).data as Float32Array;
      let form: 'rows' | 'broadcast' | null = null;
      let k = 0;
      if (od.length % row === 0 && od.length / row <= p.dims[0] && od.every((x, i) => x === pd[i])) { form = 'rows'; k = od.length / row; }
      const dims = o.dims.map(Number);
      // a broadcast over leading axes: the trailing axes of the constant hold the parameter's values once
      let j = dims.length;
      for (let prod = 1; j > 0 && prod < pd.length;) prod *= dims[--j];
      const trailing = dims.slice(j).reduce((a, d) => a * d, 1) === pd.length;
      if (!form && trailing && od.every((x, i) => x === pd[i % pd.length])) form = 'broadcast';
      if (!form) continue;
      const shapeName = r.fresh(`${name}.shape`);
      r.addInit(shapeName, { dtype: 'int64', dims: [dims.length], data: BigInt64Array.from(dims.map(BigInt)) });
      const out = r.fresh(`${name}.folded`);
      r.addInit(name, p);
      if (form === 'rows') {
        const [st, en, ax] = ['starts', 'ends', 'axes'].map((w) => r.fresh(`${name}.${w}`));
        r.addInit(st, { dtype: 'int64', dims: [1], data: BigInt64Array.from([0n]) });
        r.addInit(en, { dtype: 'int64', dims: [1], data: BigInt64Array.from([BigInt(k)]) });
        r.addInit(ax, { dtype: 'int64', dims: [1], data: BigInt64Array.from([0n]) });
        const sliced = r.fresh(`${name}.rows`);
        r.addPrelude('Slice', [name, st, en, ax], sliced);
        r.addPrelude('Reshape', [sliced, shapeName], out);
      } else {
        const one = r.fresh(`${name}.one`);
        const oneShape = r.fresh(`${name}.one_shape`);
        r.addInit(oneShape, { dtype: 'int64', dims: [dims.length], data: BigInt64Array.from(dims.map((d, i) => (i < j ? 1n : BigInt(d)))) });
        r.addPrelude('Reshape', [name, oneShape], one);
        r.addPrelude('Expand', [one, shapeName], out);
      }
      for (const n of r.nodes) n.input.forEach((x, i) => { if (x === o.name) n.input[i] = out; });
      orphans.splice(orphans.indexOf(o), 1);
      info.constants.delete(o.name);
      info.missing = info.missing.filter((m) => m.name !== name);
      if (info.exporter === 'dynamo') info.params.push({ onnx: name, torch: [name] });
      r.notes.push(`'${name}' was folded by the exporter into '${o.name}' [${dims.join(',')}] (${form === 'rows' ? `its first ${k} rows` : 'a broadcast of it'}); recovered from --torch-state, it trains whole`);
      break;
    }
  }
}

/** The model with its parameters recovered (see the file comment), and what was found; null when not a torch export. */
export function canonicalizeTorchExport(model: ModelProto, opts: { torchState?: Map<string, TensorData> } = {}): { model: ModelProto; info: TorchExportInfo } | null {
  const kind = torchExporter(model);
  if (!kind) return null;
  const r = new Rewriter(model);
  const info = kind === 'dynamo'
    ? canonicalizeDynamo(r, parseSignature(model.graph!.metadataProps.find((p) => p.key === SIGNATURE_KEY)!.value))
    : canonicalizeTorchScript(r);
  if (opts.torchState) recoverFromState(r, info, opts.torchState);
  return { model: r.finish(), info };
}

/**
 * The state_dict map of an export's parameters and buffers. dynamo's signature names them; a TorchScript export's
 * initializers are their state_dict keys (plus the keys of ties found), so its map is made from the choice.
 */
export function torchMapOf(info: TorchExportInfo, trained: string[], frozen: string[]): TorchParamMap {
  if (info.exporter === 'torchscript') {
    return {
      format: 'ademamix.torch-params/1',
      params: trained.map((n) => ({ onnx: n, torch: [n, ...(info.aliases.get(n) ?? [])] })),
      buffers: frozen.map((n) => ({ onnx: n, torch: [n] })),
      missing: [],
    };
  }
  return {
    format: 'ademamix.torch-params/1', params: info.params,
    buffers: info.buffers.filter((b) => b.torch.length),
    missing: [...info.missing.map((m) => m.name), ...info.missingBuffers],
  };
}
