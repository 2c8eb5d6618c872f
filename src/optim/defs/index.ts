// The optimizer table: every optimizer the toolkit knows, one definition file each (see types.ts).
import { adamw } from './adamw';
import { ademamix } from './ademamix';
import { laprop } from './laprop';
import { lion } from './lion';
import { mars } from './mars';
import { sfAdamw } from './sf-adamw';
import { simplified } from './simplified';
import type { OptimizerDef } from './types';

export const OPTIMIZERS: readonly OptimizerDef[] = [ademamix, simplified, adamw, lion, sfAdamw, laprop, mars];
