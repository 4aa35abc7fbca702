import { ProtoWriter } from './wire.js';

// The parts of BuildKit's LLB (solver/pb/ops.proto, package pb) patchd emits,
// with their field numbers. Encoders only: the daemon never sends ops back.

export interface Platform { readonly architecture: string; readonly os: string; readonly variant?: string }
export interface Input { readonly digest: string; readonly index: number }

export type MountSpec =
  | { readonly kind: 'bind'; readonly input: number; readonly dest: string; readonly output: number; readonly readonly?: boolean; readonly selector?: string }
  | { readonly kind: 'cache'; readonly dest: string; readonly id: string; readonly sharing: 'shared' | 'private' | 'locked' }
  | { readonly kind: 'tmpfs'; readonly dest: string };

export type OpBody =
  | { readonly kind: 'source'; readonly identifier: string; readonly attrs: Readonly<Record<string, string>> }
  | { readonly kind: 'exec'; readonly args: readonly string[]; readonly env: readonly string[]; readonly cwd: string; readonly user?: string; readonly mounts: readonly MountSpec[]; readonly network: 'sandbox' | 'host' | 'none' }
  | { readonly kind: 'mkfile'; readonly input: number; readonly path: string; readonly mode: number; readonly data: Buffer }
  | { readonly kind: 'diff'; readonly lower: number; readonly upper: number }
  | { readonly kind: 'merge'; readonly inputs: readonly number[] };

export interface Op {
  readonly inputs: readonly Input[];
  readonly body?: OpBody;
  readonly platform?: Platform;
}

const skipOutput = -1;
const netMode = { sandbox: 0, host: 1, none: 2 } as const;
const sharing = { shared: 0, private: 1, locked: 2 } as const;
const MountType = { bind: 0, cache: 3, tmpfs: 4 } as const;

function encodeMount(m: MountSpec): ProtoWriter {
  const w = new ProtoWriter();
  switch (m.kind) {
    case 'bind':
      return w.int(1, m.input).string(2, m.selector).string(3, m.dest).int(4, m.output).bool(5, m.readonly);
    case 'cache':
      return w.int(1, skipOutput).string(3, m.dest).int(4, skipOutput).int(6, MountType.cache)
        .message(20, new ProtoWriter().string(1, m.id).int(2, sharing[m.sharing]), true);
    case 'tmpfs':
      return w.int(1, skipOutput).string(3, m.dest).int(4, skipOutput).int(6, MountType.tmpfs);
  }
}

function encodeBody(w: ProtoWriter, body: OpBody): void {
  switch (body.kind) {
    case 'exec': {
      const meta = new ProtoWriter().strings(1, body.args).strings(2, body.env).string(3, body.cwd).string(4, body.user);
      const exec = new ProtoWriter().message(1, meta, true);
      for (const m of body.mounts) exec.message(2, encodeMount(m), true);
      exec.int(3, netMode[body.network]);
      w.message(2, exec, true);
      return;
    }
    case 'source':
      w.message(3, new ProtoWriter().string(1, body.identifier).stringMap(2, body.attrs), true);
      return;
    case 'mkfile': {
      const mkfile = new ProtoWriter().string(1, body.path).int(2, body.mode).bytes(3, body.data);
      // output 0: the action's result is the op's only output.
      const action = new ProtoWriter().int(1, body.input).int(2, skipOutput).int(3, 0).message(5, mkfile, true);
      w.message(4, new ProtoWriter().message(2, action, true), true);
      return;
    }
    case 'merge': {
      const merge = new ProtoWriter();
      for (const i of body.inputs) merge.message(1, new ProtoWriter().int(1, i), true);
      w.message(6, merge, true);
      return;
    }
    case 'diff':
      w.message(7, new ProtoWriter()
        .message(1, new ProtoWriter().int(1, body.lower), true)
        .message(2, new ProtoWriter().int(1, body.upper), true), true);
      return;
  }
}

export function encodeOp(op: Op): Buffer {
  const w = new ProtoWriter();
  for (const input of op.inputs) w.message(1, new ProtoWriter().string(1, input.digest).int(2, input.index), true);
  if (op.body) encodeBody(w, op.body);
  if (op.platform) w.message(10, new ProtoWriter().string(1, op.platform.architecture).string(2, op.platform.os).string(3, op.platform.variant), true);
  return w.finish();
}

export interface OpMetadata {
  readonly description?: Readonly<Record<string, string>>;
  readonly caps?: readonly string[];
}

/** pb.Definition: the marshaled ops in dependency order, and per-digest metadata (caps the daemon must have). */
export function encodeDefinition(def: readonly Buffer[], metadata: Readonly<Record<string, OpMetadata>>): ProtoWriter {
  const w = new ProtoWriter();
  for (const d of def) w.bytes(1, d, true);
  w.map(2, metadata, (entry, m) => {
    const meta = new ProtoWriter().stringMap(2, m.description);
    meta.map(5, Object.fromEntries([...(m.caps ?? [])].sort().map((c) => [c, true])), (e, v) => { e.bool(2, v); });
    entry.message(2, meta, true);
  });
  return w;
}
