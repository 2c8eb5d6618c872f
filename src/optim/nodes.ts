// Emitting optimizer nodes: a com.ademamix node (run by the fused kernel when the op library is loaded) plus its
// model-local function body (run by any ONNX Runtime without the library).
import type { GraphBuilder } from '../graph/builder';
import type { Value } from '../graph/value';
import { OpError } from '../ops/registry';
import { OPS_DOMAIN } from '../ops/optimizers';
import { ademamixFunction, adamwFunction, simplifiedFunction } from './functions';
import type { FunctionProto } from '../onnx/proto';

/** One function body per op name per model: the variant (e.g. with or without m1) must agree across nodes. */
function ensureFunction(g: GraphBuilder, name: string, variant: string, make: () => FunctionProto): void {
  const key = `${OPS_DOMAIN}::${name}::`;
  const have = g.functions.get(key);
  if (have) {
    const v = have.metadataProps.find((p) => p.key === 'variant')?.value;
    if (v !== variant) {
      throw new OpError(`${name}: this model already holds the '${v}' function body; one model cannot mix it with '${variant}' ` +
        `(e.g. beta1 = 0 and beta1 != 0 AdEMAMix nodes)`);
    }
    return;
  }
  const f = make();
  f.metadataProps.push({ $typeName: 'onnx.StringStringEntryProto', key: 'variant', value: variant });
  g.addFunction(f);
}

export interface AdemamixAttrs { beta1: number; beta2: number; eps: number; weightDecay: number }

export function ademamixStep(
  g: GraphBuilder,
  x: { param: Value; grad: Value; m1: Value | null; m2: Value; nu: Value; step: Value; lr: Value; alpha: Value; beta3: Value },
  a: AdemamixAttrs, name?: string,
): { param: Value; m1: Value | null; m2: Value; nu: Value } {
  const hasM1 = a.beta1 !== 0;
  if (hasM1 && !x.m1) throw new OpError(`AdEMAMix${name ? ` '${name}'` : ''}: beta1 = ${a.beta1} needs the m1 state`);
  ensureFunction(g, 'AdEMAMix', hasM1 ? 'm1' : 'no-m1', () => ademamixFunction(hasM1));
  const [param, m1, m2, nu] = g.opN('AdEMAMix',
    [x.param, x.grad, hasM1 ? x.m1 : null, x.m2, x.nu, x.step, x.lr, x.alpha, x.beta3],
    { beta1: a.beta1, beta2: a.beta2, eps: a.eps, weight_decay: a.weightDecay },
    { domain: OPS_DOMAIN, outputs: 4, omit: hasM1 ? [] : [1], name });
  return { param, m1: hasM1 ? m1 : null, m2, nu };
}

export interface SimplifiedAttrs { beta2: number; eps: number; weightDecay: number; biasCorrection1: boolean; biasCorrection2: boolean }

export function simplifiedStep(
  g: GraphBuilder,
  x: { param: Value; grad: Value; m: Value; nu: Value; step: Value; lr: Value; alpha: Value; beta1: Value; s1?: Value | null },
  a: SimplifiedAttrs, name?: string,
): { param: Value; m: Value; nu: Value; s1: Value | null } {
  const hasS1 = a.biasCorrection1;
  if (hasS1 && !x.s1) throw new OpError(`SimplifiedAdEMAMix${name ? ` '${name}'` : ''}: bias_correction1 needs the s1 state`);
  ensureFunction(g, 'SimplifiedAdEMAMix', hasS1 ? 's1' : 'no-s1', () => simplifiedFunction(hasS1));
  const [param, m, nu, s1] = g.opN('SimplifiedAdEMAMix',
    [x.param, x.grad, x.m, x.nu, x.step, x.lr, x.alpha, x.beta1, hasS1 ? x.s1! : null],
    { beta2: a.beta2, eps: a.eps, weight_decay: a.weightDecay, bias_correction1: hasS1 ? 1 : 0, bias_correction2: a.biasCorrection2 ? 1 : 0 },
    { domain: OPS_DOMAIN, outputs: 4, omit: hasS1 ? [] : [3], name });
  return { param, m, nu, s1: hasS1 ? s1 : null };
}

export function adamwStep(
  g: GraphBuilder,
  x: { param: Value; grad: Value; m: Value; v: Value; step: Value; lr: Value },
  a: AdemamixAttrs, name?: string,
): { param: Value; m: Value; v: Value } {
  ensureFunction(g, 'AdamW', 'default', adamwFunction);
  const [param, m, v] = g.opN('AdamW', [x.param, x.grad, x.m, x.v, x.step, x.lr],
    { beta1: a.beta1, beta2: a.beta2, eps: a.eps, weight_decay: a.weightDecay },
    { domain: OPS_DOMAIN, outputs: 3, name });
  return { param, m, v };
}
