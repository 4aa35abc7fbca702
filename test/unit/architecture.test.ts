import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cycles, folderGraph, readImportGraph, topLevelOf, type ImportGraph } from '../harness/import-graph.js';

// The house rules of src/: no file imports a file that (transitively) imports
// it; no top-level folder imports one that imports it back; and every import
// points down the stack of stages below (a new top-level part must be placed in it).

const src = new URL('../../src', import.meta.url).pathname;

/** From the ground up: a part may import its own layer and the layers before it. */
const layers: readonly (readonly string[])[] = [
  ['lib'],
  ['oci'],
  ['image'],
  ['versions'],
  ['distro'],
  ['scan'],
  ['plan'],
  ['executors'],
  ['publish'],
  ['pipeline'],
  ['config', 'queue'],
  ['continuous'],
  ['worker', 'app'],
  ['cli'],
  ['main'],
];

const graphOf = (edges: Record<string, string[]>): ImportGraph => new Map(Object.entries(edges).map(([k, v]) => [k, new Set(v)]));

test('the cycle finder finds file and folder cycles (so the checks below can fail)', () => {
  const graph = graphOf({
    'a/x.ts': ['a/y.ts'], 'a/y.ts': ['b/z.ts'], 'b/z.ts': ['a/x.ts'],
    'c/one.ts': ['d/two.ts'], 'd/two.ts': ['d/three.ts'], 'd/three.ts': ['c/four.ts'], 'c/four.ts': [],
    'e.ts': ['e.ts'],
  });
  assert.deepEqual(cycles(graph), [['a/x.ts', 'a/y.ts', 'b/z.ts'], ['e.ts']]);
  // c and d import each other through different files: no file cycle, but a folder cycle.
  const folders = folderGraph(graph);
  const folderCycles = cycles(new Map([...folders].map(([k, v]) => [k, new Set(v.keys())])));
  assert.deepEqual(folderCycles, [['a', 'b'], ['c', 'd']]);
  assert.equal(topLevelOf('worker.ts'), 'worker');
  assert.equal(topLevelOf('scan/inventory/types.ts'), 'scan');
});

test('src/ reads its imports: type-only, re-exports and dynamic imports included', () => {
  const graph = readImportGraph(src);
  assert.ok(graph.size > 50, `only ${graph.size} files read under ${src}`);
  assert.ok(graph.get('main.ts')?.has('cli/patch.ts'), 'main.ts imports cli/patch.ts');
  assert.ok(graph.get('pipeline/patch-image.ts')?.has('pipeline/types.ts'), 'a re-export counts as an import');
  assert.ok(graph.get('app/app.ts')?.has('app/dashboard/routes.tsx'), 'a .tsx module (hono/jsx pages) is read and its `.js` import resolved');
  assert.ok(graph.get('app/dashboard/routes.tsx')?.has('queue/types.ts'), 'and a .tsx module\'s own imports are read');
});

test('no file in src/ imports a file that imports it back', () => {
  const found = cycles(readImportGraph(src));
  assert.deepEqual(found, [], `import cycles:\n${found.map((c) => `  ${c.join(' <-> ')}`).join('\n')}`);
});

test('no top-level part of src/ imports one that imports it back, and every import points down the stack', () => {
  const folders = folderGraph(readImportGraph(src));
  const folderCycles = cycles(new Map([...folders].map(([k, v]) => [k, new Set(v.keys())])));
  assert.deepEqual(folderCycles, [], `folders importing each other: ${folderCycles.map((c) => c.join(' <-> ')).join('; ')}`);

  const layerOf = new Map(layers.flatMap((names, i) => names.map((n) => [n, i] as const)));
  const parts = new Set([...readImportGraph(src).keys()].map(topLevelOf));
  const unplaced = [...parts].filter((p) => !layerOf.has(p));
  assert.deepEqual(unplaced, [], `top-level parts of src/ missing from the layer list in this test: ${unplaced.join(', ')}`);
  const upward: string[] = [];
  for (const [from, edges] of folders) {
    for (const [to, imports] of edges) {
      if (layerOf.get(to)! > layerOf.get(from)!) upward.push(`${from} -> ${to} (${imports[0]})`);
    }
  }
  assert.deepEqual(upward, [], `imports pointing up the stack:\n  ${upward.join('\n  ')}`);
});
