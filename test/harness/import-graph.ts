import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize, relative, sep } from 'node:path';
import ts from 'typescript';

// The import graph of a source tree, read with TypeScript's own pre-processor
// (static, type-only and dynamic imports and re-exports alike), and the two
// things the architecture forbids: file cycles and folders that import each other.

export type ImportGraph = ReadonlyMap<string, ReadonlySet<string>>;

/** Every `.ts` and `.tsx` file under `root` (paths relative to `root`, '/'-separated) with the files it imports. */
export function readImportGraph(root: string): ImportGraph {
  const files = listTs(root);
  const known = new Set(files);
  const graph = new Map<string, Set<string>>();
  for (const file of files) {
    const targets = new Set<string>();
    for (const { fileName: spec } of ts.preProcessFile(readFileSync(join(root, file), 'utf8'), true, true).importedFiles) {
      if (!spec.startsWith('.')) continue;
      const base = normalize(join(dirname(file), spec)).split(sep).join('/');
      const target = [base.replace(/\.js$/, '.ts'), base.replace(/\.js$/, '.tsx'), base, `${base}.ts`, `${base}/index.ts`].find((c) => known.has(c));
      if (target && target !== file) targets.add(target);
    }
    graph.set(file, targets);
  }
  return graph;
}

function listTs(root: string, dir = root): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return listTs(root, path);
    return /\.tsx?$/.test(entry.name) && !entry.name.endsWith('.d.ts') ? [relative(root, path).split(sep).join('/')] : [];
  });
}

/** Strongly connected components of more than one node, or with a self-loop (Tarjan's algorithm). */
export function cycles(graph: ImportGraph): string[][] {
  let counter = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (v: string): void => {
    index.set(v, counter);
    low.set(v, counter++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!));
      }
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1 || graph.get(v)?.has(v)) found.push(component.sort());
    }
  };
  for (const v of [...graph.keys()].sort()) if (!index.has(v)) visit(v);
  return found;
}

/** A file's top-level part: its folder ('scan' for scan/match.ts), or its own name for a top-level file ('worker'). */
export function topLevelOf(file: string): string {
  const [first, ...rest] = file.split('/');
  return rest.length > 0 ? first! : first!.replace(/\.ts$/, '');
}

/** The graph between top-level parts, with the file imports behind each edge. */
export function folderGraph(graph: ImportGraph): Map<string, Map<string, string[]>> {
  const out = new Map<string, Map<string, string[]>>();
  for (const [from, targets] of graph) {
    for (const to of targets) {
      const a = topLevelOf(from);
      const b = topLevelOf(to);
      if (a === b) continue;
      let edges = out.get(a);
      if (!edges) out.set(a, (edges = new Map()));
      edges.set(b, [...(edges.get(b) ?? []), `${from} -> ${to}`]);
    }
  }
  return out;
}
