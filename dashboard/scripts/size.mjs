// Prints the gzipped size of every built asset in dist/ and the total, and fails when the
// total is over the budget (SIZE_BUDGET_KB, default 300).
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

const dist = fileURLToPath(new URL('../dist', import.meta.url));
const budgetKb = Number(process.env.SIZE_BUDGET_KB ?? 300);

/** @param {string} dir @returns {string[]} */
function walk(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? walk(path) : [path];
  });
}

let files;
try {
  files = walk(dist).filter((f) => /\.(js|css|html|svg|json)$/.test(f));
} catch {
  console.error('size: dist/ not found; run `npm run build` first');
  process.exit(1);
}

const kb = (/** @type {number} */ n) => `${(n / 1024).toFixed(1)} KB`;
let raw = 0;
let gz = 0;
const rows = files
  .map((file) => {
    const data = readFileSync(file);
    const zipped = gzipSync(data, { level: 9 }).length;
    raw += data.length;
    gz += zipped;
    return { file: relative(dist, file), raw: data.length, gz: zipped };
  })
  .sort((a, b) => b.gz - a.gz);

const width = Math.max(...rows.map((r) => r.file.length), 5);
console.log(`${'asset'.padEnd(width)}  ${'raw'.padStart(10)}  ${'gzip'.padStart(10)}`);
for (const r of rows) console.log(`${r.file.padEnd(width)}  ${kb(r.raw).padStart(10)}  ${kb(r.gz).padStart(10)}`);
console.log(`${'total'.padEnd(width)}  ${kb(raw).padStart(10)}  ${kb(gz).padStart(10)}  (budget ${budgetKb} KB gzipped)`);

if (gz > budgetKb * 1024) {
  console.error(`size: over budget by ${kb(gz - budgetKb * 1024)}`);
  process.exit(1);
}
