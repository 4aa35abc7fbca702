import { createHash } from 'node:crypto';
import { encodeDefinition, encodeOp, type MountSpec, type Op, type OpBody, type OpMetadata, type Platform } from './proto/ops.js';
import type { ProtoWriter } from './proto/wire.js';

/**
 * A tiny LLB builder: immutable states (an op's output) that compose into a
 * graph, marshaled in dependency order with each op's digest computed from
 * the exact bytes sent (as the daemon recomputes it). Maps are written with
 * sorted keys, so the same graph always has the same digests (and cache hits).
 */
export class LlbState {
  private constructor(readonly node: LlbNode, readonly output: number) {}

  static of(node: LlbNode, output = 0): LlbState {
    return new LlbState(node, output);
  }

  /** Runs a command with this state as its root filesystem; the result is the root after it. */
  run(spec: RunSpec): LlbState {
    const inputs: LlbState[] = [this];
    const mounts: MountSpec[] = [{ kind: 'bind', input: 0, dest: '/', output: 0 }];
    let outputs = 1;
    const extraOutputs: Record<string, number> = {};
    for (const m of spec.mounts ?? []) {
      if (m.kind === 'cache') mounts.push({ kind: 'cache', dest: m.dest, id: m.id, sharing: m.sharing ?? 'locked' });
      else if (m.kind === 'tmpfs') mounts.push({ kind: 'tmpfs', dest: m.dest });
      else {
        inputs.push(m.state);
        const output = m.readonly ? -1 : outputs++;
        if (output >= 0) extraOutputs[m.dest] = output;
        mounts.push({ kind: 'bind', input: inputs.length - 1, dest: m.dest, output, ...(m.readonly ? { readonly: true } : {}) });
      }
    }
    const node = new LlbNode(
      { kind: 'exec', args: spec.args, env: spec.env ?? defaultEnv, cwd: spec.cwd ?? '/', ...(spec.user ? { user: spec.user } : {}), mounts, network: spec.network ?? 'sandbox' },
      inputs,
      execCaps(spec),
      spec.name,
      this.node.platform,
    );
    const root = LlbState.of(node, 0);
    root.mountOutputs = Object.fromEntries(Object.entries(extraOutputs).map(([dest, i]) => [dest, LlbState.of(node, i)]));
    return root;
  }

  /** The state of a writable bind mount of the last run() (e.g. a target root mounted at /target). */
  mountOutput(dest: string): LlbState {
    const state = this.mountOutputs?.[dest];
    // Strategies ask only for mounts they made writable themselves: only a bug of ours gets here, so a plain Error.
    if (!state) throw new Error(`no writable mount at ${dest} in this run`);
    return state;
  }
  private mountOutputs?: Record<string, LlbState>;

  /** Writes one file (scripts, config) into this state. */
  mkfile(path: string, mode: number, data: string | Buffer, name?: string): LlbState {
    return LlbState.of(new LlbNode({ kind: 'mkfile', input: 0, path, mode, data: Buffer.from(data) }, [this], ['file.base'], name, this.node.platform));
  }
}

export interface RunSpec {
  readonly args: readonly string[];
  readonly env?: readonly string[];
  readonly cwd?: string;
  readonly user?: string;
  readonly network?: 'sandbox' | 'host' | 'none';
  readonly mounts?: readonly (
    | { readonly kind: 'cache'; readonly dest: string; readonly id: string; readonly sharing?: 'shared' | 'private' | 'locked' }
    | { readonly kind: 'tmpfs'; readonly dest: string }
    | { readonly kind: 'bind'; readonly dest: string; readonly state: LlbState; readonly readonly?: boolean }
  )[];
  /** Shown in BuildKit's progress (the vertex name). */
  readonly name?: string;
}

const defaultEnv = ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'];

function execCaps(spec: RunSpec): string[] {
  const caps = ['exec.meta.base', 'exec.mount.bind'];
  if (spec.network && spec.network !== 'sandbox') caps.push('exec.meta.network');
  if (spec.mounts?.some((m) => m.kind === 'cache')) caps.push('exec.mount.cache', 'exec.mount.cache.sharing');
  if (spec.mounts?.some((m) => m.kind === 'tmpfs')) caps.push('exec.mount.tmpfs');
  return caps;
}

export class LlbNode {
  constructor(
    readonly body: OpBody,
    readonly inputs: readonly LlbState[],
    readonly caps: readonly string[],
    readonly name?: string,
    readonly platform?: Platform,
  ) {}
}

/** A file on an empty filesystem (no base image). */
export function scratchFile(path: string, data: string | Buffer, name?: string): LlbState {
  return LlbState.of(new LlbNode({ kind: 'mkfile', input: -1, path, mode: 0o644, data: Buffer.from(data) }, [], ['file.base'], name));
}

/** `docker-image://ref` for one platform; resolve mode `default` uses a cached copy when the digest matches. */
export function image(ref: string, options: { platform: Platform; resolveMode?: 'default' | 'pull' | 'local'; name?: string }): LlbState {
  const attrs: Record<string, string> = {};
  if (options.resolveMode && options.resolveMode !== 'default') attrs['image.resolvemode'] = options.resolveMode;
  return LlbState.of(new LlbNode({ kind: 'source', identifier: `docker-image://${ref}`, attrs }, [], ['source.image', ...(options.resolveMode ? ['source.image.resolvemode'] : [])], options.name ?? `pull ${ref}`, options.platform));
}

/** What `upper` added, changed or deleted relative to `lower` (deletions as whiteouts). */
export function diff(lower: LlbState, upper: LlbState, name?: string): LlbState {
  return LlbState.of(new LlbNode({ kind: 'diff', lower: 0, upper: 1 }, [lower, upper], ['diffop'], name));
}

export function merge(states: readonly LlbState[], name?: string): LlbState {
  return LlbState.of(new LlbNode({ kind: 'merge', inputs: states.map((_, i) => i) }, states, ['mergeop'], name));
}

export interface Marshaled {
  readonly definition: ProtoWriter;
  /** Digest of each op, root last (the terminal op that selects the result). */
  readonly digests: readonly string[];
}

/** Encodes the graph under `root` in dependency order, each op once, plus the terminal op BuildKit expects. */
export function marshal(root: LlbState): Marshaled {
  const encoded = new Map<LlbNode, string>();
  const def: Buffer[] = [];
  const metadata: Record<string, OpMetadata> = {};
  const digests: string[] = [];
  const visit = (node: LlbNode): string => {
    const known = encoded.get(node);
    if (known) return known;
    const inputs = node.inputs.map((s) => ({ digest: visit(s.node), index: s.output }));
    const op: Op = { inputs, body: node.body, ...(node.platform ? { platform: node.platform } : {}) };
    const bytes = encodeOp(op);
    const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
    if (!metadata[digest]) {
      def.push(bytes);
      digests.push(digest);
      metadata[digest] = { caps: node.caps, ...(node.name ? { description: { 'llb.customname': node.name } } : {}) };
    }
    encoded.set(node, digest);
    return digest;
  };
  const rootDigest = visit(root.node);
  const terminal = encodeOp({ inputs: [{ digest: rootDigest, index: root.output }] });
  const terminalDigest = `sha256:${createHash('sha256').update(terminal).digest('hex')}`;
  def.push(terminal);
  digests.push(terminalDigest);
  metadata[terminalDigest] = {};
  return { definition: encodeDefinition(def, metadata), digests };
}
