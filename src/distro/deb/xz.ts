import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import xzPackage from 'xz-decompress';

const { XzReadableStream } = xzPackage;

/**
 * Streaming xz decompression, joined to `input` both ways: a failure of
 * either, or destroying the result, ends both. The system's `xz` when there
 * is one (native, and in a process of its own, so unpacking one package
 * overlaps the next one's decompression: about three times the speed of
 * the fallback), else xz-embedded compiled to WebAssembly (no native addon).
 */
export function xzDecompress(input: Readable, compressedSize?: number): Readable {
  // Starting a process costs more than decompressing a small member (a control.tar) in WebAssembly.
  const xz = compressedSize !== undefined && compressedSize < minProcessBytes ? undefined : systemXz();
  return xz ? viaProcess(xz, input) : viaWasm(input);
}

const minProcessBytes = 256 * 1024;

function viaWasm(input: Readable): Readable {
  const web = new XzReadableStream(Readable.toWeb(input) as unknown as ReadableStream<Uint8Array>);
  return Readable.fromWeb(web as unknown as Parameters<typeof Readable.fromWeb>[0]);
}

function viaProcess(xz: string, input: Readable): Readable {
  const child = spawn(xz, ['--decompress', '--stdout', '--quiet', '--no-warn', '--threads=1'], { stdio: ['pipe', 'pipe', 'pipe'] });
  const output = new PassThrough();
  const stderr: Buffer[] = [];
  let settled = false;
  const fail = (error: Error) => {
    if (settled) return;
    settled = true;
    child.kill('SIGKILL');
    input.destroy();
    output.destroy(error);
  };
  child.stderr.on('data', (chunk: Buffer) => { if (stderr.length < 16) stderr.push(chunk); });
  child.on('error', fail);
  child.stdin.on('error', () => { /* xz stopped reading: its exit status says why */ });
  input.on('error', fail);
  input.pipe(child.stdin);
  child.stdout.pipe(output, { end: false });
  // 'close' comes after stdout is drained: the output ends only once every byte is through and xz said it was whole.
  child.on('close', (code, signal) => {
    if (settled) return;
    if (code === 0) { settled = true; output.end(); return; }
    fail(new Error(`xz: ${Buffer.concat(stderr).toString('utf8').trim() || `exited with ${code ?? signal}`}`));
  });
  output.on('close', () => {
    if (settled) return;
    // The reader stopped early (or failed): nothing more is wanted from xz.
    settled = true;
    child.kill('SIGKILL');
    input.destroy();
  });
  return output;
}

let found: string | null | undefined;

function systemXz(): string | undefined {
  if (found === undefined) {
    found = null;
    for (const dir of (process.env['PATH'] ?? '').split(delimiter).filter(Boolean)) {
      try {
        accessSync(join(dir, 'xz'), constants.X_OK);
        found = join(dir, 'xz');
        break;
      } catch { /* not here */ }
    }
  }
  return found ?? undefined;
}
