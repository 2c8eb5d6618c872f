// Rewrites custom-ops/include/ademamix/schemas.gen.h from the optimizer definitions (needs the built dist/).
import { createRequire } from 'node:module';
import * as fs from 'node:fs';
import * as path from 'node:path';
const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const { generateSchemasHeader } = createRequire(import.meta.url)(path.join(root, 'dist/index.js'));
const file = path.join(root, 'custom-ops/include/ademamix/schemas.gen.h');
fs.writeFileSync(file, generateSchemasHeader());
console.log(`wrote ${path.relative(root, file)}`);
