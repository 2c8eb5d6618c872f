// Jest transformer: esbuild turns TypeScript and ES modules into CommonJS.
const esbuild = require('esbuild');
module.exports = {
  process(source, filename) {
    const loader = filename.endsWith('.ts') ? 'ts' : 'js';
    const out = esbuild.transformSync(source, {
      loader, format: 'cjs', target: 'node20', sourcemap: 'inline', sourcefile: filename,
    });
    return { code: out.code };
  },
  getCacheKey(source, filename) {
    return require('crypto').createHash('sha1').update(filename).update('\0').update(source).update('v1').digest('hex');
  },
};
