// Constants, casts and other ops that move or relabel data.
import { fromOnnxType, isFloat } from '../graph/dtype';
import type { Value } from '../graph/value';
import { castLike } from './grad-util';
import { defineOp } from './registry';

// value (tensor) or value_float / value_int forms; the latter take attribute references in function bodies.
defineOp({
  opType: 'Constant',
  infer: (ctx) => {
    const found = ['value', 'value_float', 'value_int', 'value_floats', 'value_ints'].find((k) => ctx.attr(k));
    if (!found) return ctx.fail('needs a value attribute');
    const v = ctx.attr(found)!;
    if (v.kind === 'tensor') return [{ dtype: v.value.dtype, shape: [...v.value.dims] }];
    const len = v.kind === 'floats' || v.kind === 'ints' ? v.value.length : null;
    switch (found) {
      case 'value_float': return [{ dtype: 'float32', shape: [] }];
      case 'value_int': return [{ dtype: 'int64', shape: [] }];
      case 'value_floats': return [{ dtype: 'float32', shape: [len] }];
      case 'value_ints': return [{ dtype: 'int64', shape: [len] }];
      default: return [{ dtype: null, shape: null }];
    }
  },
  nonDifferentiable: true,
});
defineOp({
  opType: 'Cast',
  attrTypes: { to: 'int' },
  infer: (ctx) => [{ dtype: fromOnnxType(ctx.int('to', 0), `${ctx.node.label} 'to'`), shape: ctx.input(0).shape }],
  // float↔float casts pass the gradient back in the input's type; casts to or from integers stop it
  grad: ({ g, node, dOut }) => {
    const x = node.inputs[0] as Value;
    return [isFloat(x.dtype) && isFloat(node.outputs[0].dtype) ? castLike(g, dOut[0]!, x) : null];
  },
});
defineOp({ opType: 'Size', infer: () => [{ dtype: 'int64', shape: [] }], nonDifferentiable: true });
// CastLike (opset 15; the dynamo exporter emits it for scalar constants): Cast to the type of input 1.
defineOp({
  opType: 'CastLike',
  infer: (ctx) => [{ dtype: ctx.input(1).dtype, shape: ctx.input(0).shape }],
  grad: ({ g, node, dOut }) => {
    const x = node.inputs[0] as Value;
    return [isFloat(x.dtype) && isFloat(node.outputs[0].dtype) ? castLike(g, dOut[0]!, x) : null, null];
  },
});
