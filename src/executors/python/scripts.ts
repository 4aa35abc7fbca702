import type { EntryPoints, ScriptEntryPoint } from './wheel.js';

/**
 * Console and GUI script wrappers as pip writes them (distlib's
 * ScriptMaker with pip's options): the interpreter's shebang, then a stub
 * that imports the entry point and exits with its result.
 */
export function scriptWrapper(shebang: string, entry: ScriptEntryPoint): Buffer {
  const importName = entry.attr.split('.')[0]!;
  const body = [
    '# -*- coding: utf-8 -*-',
    'import re',
    'import sys',
    `from ${entry.module} import ${importName}`,
    "if __name__ == '__main__':",
    "    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])",
    `    sys.exit(${entry.attr}())`,
    '',
  ].join('\n');
  return Buffer.from(`${shebang.endsWith('\n') ? shebang : `${shebang}\n`}${body}`, 'utf8');
}

/**
 * The wrappers pip generates for a wheel's entry points, by file name. pip
 * and setuptools get versioned wrappers (pip, pip3, pip3.X; easy_install,
 * easy_install-3.X) instead of the ones baked into their wheels; of those, only
 * the names the old install had are kept when it had any, since how the
 * image's pip was installed (ensurepip's altinstall or not) decided them.
 */
export function scriptsToGenerate(entryPoints: EntryPoints, python: { major: number; minor: number }, oldScriptNames: ReadonlySet<string>): Map<string, ScriptEntryPoint> {
  const out = new Map<string, ScriptEntryPoint>();
  const console = new Map(entryPoints.console.map((e) => [e.name, e]));
  const short = `${python.major}.${python.minor}`;
  const versioned = (base: string, names: string[], drop: RegExp) => {
    const entry = console.get(base);
    if (!entry) return;
    for (const k of [...console.keys()]) if (drop.test(k)) console.delete(k);
    const kept = names.filter((n) => oldScriptNames.has(n));
    for (const name of kept.length > 0 ? kept : names) out.set(name, { ...entry, name });
  };
  versioned('pip', ['pip', `pip${python.major}`, `pip${short}`], /^pip(\d+(\.\d+)?)?$/);
  versioned('easy_install', ['easy_install', `easy_install-${short}`], /^easy_install(-\d+\.\d+)?$/);
  for (const [name, entry] of console) out.set(name, entry);
  for (const entry of entryPoints.gui) out.set(entry.name, entry);
  return out;
}

/**
 * The shebang of a script pip wrote: its first line, or distlib's three-line
 * `/bin/sh` trampoline for interpreter paths with spaces or over 127 bytes.
 */
export function shebangOf(script: Buffer): { shebang: string; executable: string } | undefined {
  const text = script.subarray(0, 4096).toString('utf8');
  if (!text.startsWith('#!')) return undefined;
  const lines = text.split('\n');
  if (lines[0] === '#!/bin/sh' && lines[1]?.startsWith("'''exec' ") && lines[2] === "' '''") {
    const m = /^'''exec' "?(.*?)"? "\$0" "\$@"$/.exec(lines[1]);
    return m ? { shebang: `${lines.slice(0, 3).join('\n')}\n`, executable: m[1]! } : undefined;
  }
  if (lines.length < 2) return undefined;
  const first = lines[0]!.replace(/\r$/, '');
  return { shebang: `${first}\n`, executable: first.slice(2).trim().split(/\s+/)[0]! };
}

/** pip's fix_script: a `#!python` first line in a wheel's .data/scripts becomes the interpreter's. */
export function fixScriptShebang(content: Buffer, executable: string): Buffer {
  if (!content.subarray(0, 8).equals(Buffer.from('#!python'))) return content;
  const end = content.indexOf(0x0a);
  const rest = end < 0 ? Buffer.alloc(0) : content.subarray(end + 1);
  return Buffer.concat([Buffer.from(`#!${executable}\n`), rest]);
}
