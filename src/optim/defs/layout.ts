// The formal inputs and outputs of an optimizer's ops, from its definition (pure functions; no registry, no graph).
// Per-tensor: param, grad, the states, step, the scalars, the optional scalar states; outputs param_out, each state's
// and scalar state's `_out`. Multi-tensor: step, the scalars and scalar states, then the tensor lists.
import type { OptimizerDef } from './types';

export const OPS_DOMAIN = 'com.ademamix';

export const perTensorInputs = (d: OptimizerDef): string[] =>
  ['param', 'grad', ...d.states.map((s) => s.name), 'step', ...d.scalars.map((s) => s.name), ...(d.globals ?? []).map((g) => g.name)];
export const perTensorOutputs = (d: OptimizerDef): string[] =>
  ['param_out', ...d.states.map((s) => `${s.name}_out`), ...(d.globals ?? []).map((g) => `${g.name}_out`)];
/** The multi-tensor form's inputs before its tensor lists. */
export const multiScalars = (d: OptimizerDef): string[] =>
  ['step', ...d.scalars.map((s) => s.name), ...(d.globals ?? []).map((g) => g.name)];

/** The op attribute (and its default) of a hyperparameter key. */
export function attrOf(d: OptimizerDef, key: string): { name: string; dflt: number } {
  const h = d.hyper.find((x) => x.key === key);
  if (!h?.attr) throw new Error(`${d.name}: hyperparameter '${key}' is not an op attribute`);
  return { name: h.attr, dflt: typeof h.default === 'boolean' ? (h.default ? 1 : 0) : h.default };
}
