import { ProtoReader, ProtoWriter } from './wire.js';

// moby.buildkit.v1.Control messages (api/services/control/control.proto) patchd uses.

export interface SolveRequest {
  readonly ref: string;
  readonly definition: ProtoWriter;
  readonly session: string;
  readonly exporters: readonly { readonly type: string; readonly attrs: Readonly<Record<string, string>> }[];
}

export function encodeSolveRequest(r: SolveRequest): Buffer {
  const w = new ProtoWriter().string(1, r.ref).message(2, r.definition, true).string(5, r.session);
  for (const e of r.exporters) w.message(13, new ProtoWriter().string(1, e.type).stringMap(2, e.attrs), true);
  return w.finish();
}

export function decodeSolveResponse(buf: Buffer): { exporterResponse: Record<string, string> } {
  return { exporterResponse: new ProtoReader(buf).stringMap(1) };
}

export const encodeStatusRequest = (ref: string): Buffer => new ProtoWriter().string(1, ref).finish();

export interface StatusUpdate {
  readonly vertexes: readonly { readonly digest: string; readonly name: string; readonly cached: boolean; readonly started: boolean; readonly completed: boolean; readonly error: string }[];
  readonly logs: readonly { readonly vertex: string; readonly stream: number; readonly msg: Buffer }[];
}

export function decodeStatusResponse(buf: Buffer): StatusUpdate {
  const r = new ProtoReader(buf);
  return {
    vertexes: r.messages(1).map((v) => ({ digest: v.string(1), name: v.string(3), cached: v.bool(4), started: v.message(5) !== undefined, completed: v.message(6) !== undefined, error: v.string(7) })),
    logs: r.messages(3).map((l) => ({ vertex: l.string(1), stream: l.int(3), msg: l.bytes(4) })),
  };
}

export function decodeInfoResponse(buf: Buffer): { package: string; version: string; revision: string } {
  const v = new ProtoReader(buf).message(1);
  return { package: v?.string(1) ?? '', version: v?.string(2) ?? '', revision: v?.string(3) ?? '' };
}

/** BytesMessage, shared by Control.Session and the filesync services. */
export const encodeBytesMessage = (data: Uint8Array): Buffer => new ProtoWriter().bytes(1, data).finish();
export const decodeBytesMessage = (buf: Buffer): Buffer => new ProtoReader(buf).bytes(1);

export function decodeWorkers(buf: Buffer): { id: string; labels: Record<string, string>; platforms: { architecture: string; os: string; variant: string }[] }[] {
  return new ProtoReader(buf).messages(1).map((w) => ({
    id: w.string(1), labels: w.stringMap(2),
    platforms: w.messages(3).map((p) => ({ architecture: p.string(1), os: p.string(2), variant: p.string(3) })),
  }));
}
