// The C++ op schemas, generated from the optimizer definitions: custom-ops/include/ademamix/schemas.gen.h (checked
// in; `node scripts/gen-schemas.mjs` rewrites it after a build, test/schemas.test.ts fails when it is stale).
import { OPTIMIZERS, type OptimizerDef } from './derive';
import { QUANT_BLOCK, quantMap } from './precision';

const cIdent = (s: string): string => s.replace(/[^A-Za-z0-9]/g, '_');
const num = (x: number): string => (Number.isInteger(x) ? `${x}.0` : String(x));
const strs = (xs: string[]): string => `{${xs.map((x) => `"${x}"`).join(', ')}}`;

function attrsOf(d: OptimizerDef) {
  return d.hyper.filter((h) => h.attr).map((h) => ({ name: h.attr!, isInt: h.type === 'bool', dflt: h.type === 'bool' ? (h.default ? 1 : 0) : (h.default as number) }));
}

export function generateSchemasHeader(): string {
  const out: string[] = [
    '// GENERATED from src/optim/defs/ by src/optim/schemas.ts (node scripts/gen-schemas.mjs): do not edit.',
    '// test/schemas.test.ts regenerates it and fails on any difference.',
    '// Per op: the per-step scalar inputs after `step`, the per-tensor states (one may be dropped when an attribute is 0),',
    '// the attributes with their defaults, the optimizer-wide scalar states, and for the generic (multi-tensor only)',
    '// ops the kernel functor (kernels.h) and whether it needs a per-tensor norm pass first.',
    '#pragma once',
    '',
    'namespace ademamix {',
    'namespace schema {',
    '',
    'struct Attr { const char* name; bool is_int; double dflt; };',
    'struct Op {',
    '  const char* name;       // ONNX op type (domain com.ademamix)',
    '  const char* optimizer;  // definition name (--optimizer)',
    '  int n_scalars; const char* const* scalars;',
    '  int n_states; const char* const* states;',
    '  int drop_state; const char* drop_attr;  // state slot absent when that attribute is 0; -1: none',
    '  int n_attrs; const Attr* attrs;',
    '  int n_globals; const char* const* globals;',
    '  bool generic;  // multi-tensor fused op of the generic kernel (else one of the three original kernels)',
    '  bool norm_pass;',
    '  const bool* unsigned_states;  // per state: 8-bit storage uses the unsigned dynamic map (second moments)',
    '};',
    '',
  ];
  let maxAttrs = 0; let maxScalars = 0;
  for (const d of OPTIMIZERS) {
    const id = cIdent(d.op);
    const a = attrsOf(d);
    maxAttrs = Math.max(maxAttrs, a.length); maxScalars = Math.max(maxScalars, d.scalars.length);
    out.push(`inline constexpr const char* k${id}Scalars[] = ${strs(d.scalars.map((s) => s.name))};`);
    out.push(`inline constexpr const char* k${id}States[] = ${strs(d.states.map((s) => s.name))};`);
    out.push(`inline constexpr bool k${id}Unsigned[] = {${d.states.map((s) => String(!!s.unsigned)).join(', ')}};`);
    out.push(`inline constexpr Attr k${id}Attrs[] = {${a.map((x) => `{"${x.name}", ${x.isInt}, ${num(x.dflt)}}`).join(', ')}};`);
    const gl = (d.globals ?? []).map((x) => x.name);
    out.push(`inline constexpr const char* k${id}Globals[] = ${gl.length ? strs(gl) : '{nullptr}'};`);
    a.forEach((x, k) => out.push(`inline constexpr int k${id}_${cIdent(x.name)} = ${k};`));
    d.scalars.forEach((x, k) => out.push(`inline constexpr int k${id}_scalar_${cIdent(x.name)} = ${k};`));
    out.push('');
  }
  out.push(`inline constexpr int kMaxAttrs = ${maxAttrs};`, `inline constexpr int kMaxScalars = ${maxScalars};`, '');
  out.push('inline constexpr Op kOps[] = {');
  for (const d of OPTIMIZERS) {
    const id = cIdent(d.op);
    const drop = d.states.findIndex((s) => s.dropWhenZero);
    const dropAttr = drop >= 0 ? d.hyper.find((h) => h.key === d.states[drop].dropWhenZero)?.attr : undefined;
    if (drop >= 0 && !dropAttr) throw new Error(`${d.name}: state '${d.states[drop].name}' is dropped by a hyperparameter that is no attribute`);
    out.push(`    {"${d.op}", "${d.name}", ${d.scalars.length}, k${id}Scalars, ${d.states.length}, k${id}States, ${drop}, ` +
      `${dropAttr ? `"${dropAttr}"` : 'nullptr'}, ${attrsOf(d).length}, k${id}Attrs, ${(d.globals ?? []).length}, k${id}Globals, ` +
      `${!d.emit}, ${!!d.kernel?.normPass}, k${id}Unsigned},`);
  }
  out.push('};', `inline constexpr int kNumOps = ${OPTIMIZERS.length};`, '');
  out.push('// The generic ops: X(op index in kOps, ONNX op, kernel functor)');
  out.push('#define ADEMAMIX_GENERIC_OPS(X) \\');
  const gen = OPTIMIZERS.map((d, i) => [d, i] as const).filter(([d]) => !d.emit);
  gen.forEach(([d, i], k) => {
    if (!d.kernel) throw new Error(`${d.name}: a generic definition needs its kernel functor`);
    out.push(`  X(${i}, ${cIdent(d.op)}, ${d.kernel.functor})${k < gen.length - 1 ? ' \\' : ''}`);
  });
  out.push('');
  out.push('// 8-bit blockwise states (src/optim/precision.ts): block size, bitsandbytes\' dynamic maps (float32, sorted) and', 
    '// their decision thresholds (code = the largest k with x >= thr[k]; thr[0] is never read). Macros so a .cu file',
    '// can put the same values in __constant__ memory.',
    `inline constexpr int kQuantBlock = ${QUANT_BLOCK};`);
  const lit = (x: number): string => (Number.isFinite(x) ? `${x === 0 ? '0.0' : x.toPrecision(9)}f` : '-3.40282347e38f');
  const arr = (xs: Float32Array): string => Array.from(xs, lit).reduce((acc, v, i) => acc + (i % 8 === 0 ? ' \\\n    ' : ' ') + v + (i < xs.length - 1 ? ',' : ''), '');
  for (const [nm, signed] of [['SIGNED', true], ['UNSIGNED', false]] as const) {
    const m = quantMap(signed);
    out.push(`#define ADEMAMIX_QMAP_${nm} {${arr(m.values)} \\\n  }`);
    out.push(`#define ADEMAMIX_QTHR_${nm} {${arr(m.thresholds)} \\\n  }`);
  }
  out.push('inline constexpr float kQuantMapSigned[256] = ADEMAMIX_QMAP_SIGNED;', 'inline constexpr float kQuantThrSigned[256] = ADEMAMIX_QTHR_SIGNED;',
    'inline constexpr float kQuantMapUnsigned[256] = ADEMAMIX_QMAP_UNSIGNED;', 'inline constexpr float kQuantThrUnsigned[256] = ADEMAMIX_QTHR_UNSIGNED;');
  out.push('', '}  // namespace schema', '}  // namespace ademamix', '');
  return out.join('\n');
}
