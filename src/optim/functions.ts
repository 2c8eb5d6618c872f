// Model-local function bodies of standard ONNX ops for the com.ademamix optimizer ops, so a runtime without the
// op library still runs the graph (ORT inlines the body when no kernel is registered for the op).
// Scalars (bias corrections, 1−β3) are computed in double and cast to float once, like the fused kernels.
import { GraphBuilder } from '../graph/builder';
import { toFunctionProto } from '../graph/serialize';
import { attr, type Value } from '../graph/value';
import type { FunctionProto } from '../onnx/proto';
import {
  ADAMW_INPUTS, ADAMW_OUTPUTS, ADEMAMIX_INPUTS, ADEMAMIX_OUTPUTS, OPS_DOMAIN, SIMPLIFIED_INPUTS, SIMPLIFIED_OUTPUTS,
} from '../ops/optimizers';

/** The value of the calling node's float attribute `name`, as a float32 scalar. */
const fattr = (g: GraphBuilder, name: string): Value => g.op('Constant', [], { value_float: attr.ref(name, 'float') });
const iattr = (g: GraphBuilder, name: string): Value => g.op('Constant', [], { value_int: attr.ref(name, 'int') });

function formals(g: GraphBuilder, names: string[]): Record<string, Value> {
  const out: Record<string, Value> = {};
  for (const n of names) {
    const dtype = n === 'step' ? 'int64' : ['lr', 'alpha', 'beta3', 'beta1'].includes(n) ? null : 'float32';
    out[n] = g.input(n, dtype, null);
  }
  return out;
}

/** 1 − b^t in double, as float32 (b: a float32 scalar, t: the int64 step). */
function oneMinusPow(g: GraphBuilder, b: Value, step: Value): Value {
  const bd = g.cast(b, 'float64');
  return g.cast(g.sub(g.scalar(1, 'float64'), g.pow(bd, g.cast(step, 'float64'))), 'float32');
}

/** θ − lr·(u + λ·θ) */
function applyUpdate(g: GraphBuilder, param: Value, u: Value, lr: Value, wd: Value): Value {
  return g.sub(param, g.mul(lr, g.add(u, g.mul(wd, param))));
}

/** ν ← β2·ν + (1−β2)·g² */
function secondMoment(g: GraphBuilder, nu: Value, grad: Value, b2: Value): Value {
  return g.add(g.mul(b2, nu), g.mul(g.sub(1, b2), g.mul(grad, grad)));
}

export function ademamixFunction(hasM1: boolean): FunctionProto {
  const g = new GraphBuilder();
  const x = formals(g, ADEMAMIX_INPUTS);
  const b1 = fattr(g, 'beta1'); const b2 = fattr(g, 'beta2');
  const eps = fattr(g, 'eps'); const wd = fattr(g, 'weight_decay');
  const lr = g.cast(x.lr, 'float32'); const alpha = g.cast(x.alpha, 'float32');
  const b3d = g.cast(x.beta3, 'float64');
  const b3 = g.cast(b3d, 'float32');
  const oneMinusB3 = g.cast(g.sub(g.scalar(1, 'float64'), b3d), 'float32'); // ~1e-4: float32 β3 would lose it
  const m1 = hasM1 ? g.add(g.mul(b1, x.m1), g.mul(g.sub(1, b1), x.grad)) : g.identity(x.grad);
  const m2 = g.add(g.mul(b3, x.m2), g.mul(oneMinusB3, x.grad));
  const nu = secondMoment(g, x.nu, x.grad, b2);
  const bc2 = oneMinusPow(g, b2, x.step);
  const fast = hasM1 ? g.div(m1, oneMinusPow(g, b1, x.step)) : m1;
  const u = g.div(g.add(fast, g.mul(alpha, m2)), g.add(g.sqrt(g.div(nu, bc2)), eps));
  g.output(applyUpdate(g, x.param, u, lr, wd), 'param_out');
  g.output(m1, 'm1_out');
  g.output(m2, 'm2_out');
  g.output(nu, 'nu_out');
  return toFunctionProto(g, {
    domain: OPS_DOMAIN, name: 'AdEMAMix',
    docString: `AdEMAMix step as standard ops (${hasM1 ? 'with m1' : 'beta1 = 0: m1 = grad'}). Outputs: ${ADEMAMIX_OUTPUTS.join(', ')}.`,
    attributes: { beta1: attr.f(0.9), beta2: attr.f(0.999), eps: attr.f(1e-8), weight_decay: attr.f(0) },
  });
}

export function simplifiedFunction(hasS1: boolean): FunctionProto {
  const g = new GraphBuilder();
  const x = formals(g, SIMPLIFIED_INPUTS);
  const b2 = fattr(g, 'beta2'); const eps = fattr(g, 'eps'); const wd = fattr(g, 'weight_decay');
  const lr = g.cast(x.lr, 'float32'); const alpha = g.cast(x.alpha, 'float32');
  const b1 = g.cast(x.beta1, 'float32');
  const m = g.add(g.mul(b1, x.m), x.grad);
  const nu = secondMoment(g, x.nu, x.grad, b2);
  // denominator = √ν·S2^(−c/2) + ε·S2^((1−c)/2) with c = bias_correction2 ∈ {0, 1}: both variants, no branch.
  const s2 = g.cast(oneMinusPow(g, b2, x.step), 'float64');
  const c = g.cast(iattr(g, 'bias_correction2'), 'float64');
  const kNu = g.cast(g.pow(s2, g.mul(c, -0.5)), 'float32');
  const kEps = g.cast(g.pow(s2, g.mul(g.sub(1, c), 0.5)), 'float32');
  let u = g.div(g.add(m, g.mul(alpha, x.grad)), g.add(g.mul(g.sqrt(nu), kNu), g.mul(eps, kEps)));
  let s1: Value;
  if (hasS1) {
    s1 = g.add(g.mul(b1, g.cast(x.s1, 'float32')), 1);
    // u / S1^c1: S1 is only applied with bias_correction1
    const c1 = g.cast(iattr(g, 'bias_correction1'), 'float32');
    u = g.div(u, g.pow(s1, c1));
  } else {
    s1 = g.scalar(0);
  }
  g.output(applyUpdate(g, x.param, u, lr, wd), 'param_out');
  g.output(m, 'm_out');
  g.output(nu, 'nu_out');
  g.output(s1, 's1_out');
  return toFunctionProto(g, {
    domain: OPS_DOMAIN, name: 'SimplifiedAdEMAMix',
    docString: `Simplified-AdEMAMix step as standard ops (${hasS1 ? 'with' : 'without'} the s1 state). Outputs: ${SIMPLIFIED_OUTPUTS.join(', ')}.`,
    attributes: { beta2: attr.f(0.999), eps: attr.f(1e-8), weight_decay: attr.f(0), bias_correction1: attr.i(0), bias_correction2: attr.i(1) },
  });
}

export function adamwFunction(): FunctionProto {
  const g = new GraphBuilder();
  const x = formals(g, ADAMW_INPUTS);
  const b1 = fattr(g, 'beta1'); const b2 = fattr(g, 'beta2');
  const eps = fattr(g, 'eps'); const wd = fattr(g, 'weight_decay');
  const lr = g.cast(x.lr, 'float32');
  const m = g.add(g.mul(b1, x.m), g.mul(g.sub(1, b1), x.grad));
  const v = secondMoment(g, x.v, x.grad, b2);
  const decayed = g.mul(x.param, g.sub(1, g.mul(lr, wd)));
  const u = g.div(g.div(m, oneMinusPow(g, b1, x.step)), g.add(g.sqrt(g.div(v, oneMinusPow(g, b2, x.step))), eps));
  g.output(g.sub(decayed, g.mul(lr, u)), 'param_out');
  g.output(m, 'm_out');
  g.output(v, 'v_out');
  return toFunctionProto(g, {
    domain: OPS_DOMAIN, name: 'AdamW',
    docString: `AdamW step (torch.optim.AdamW semantics) as standard ops. Outputs: ${ADAMW_OUTPUTS.join(', ')}.`,
    attributes: { beta1: attr.f(0.9), beta2: attr.f(0.999), eps: attr.f(1e-8), weight_decay: attr.f(0.01) },
  });
}
