import { randomBytes } from 'node:crypto';
import { Duplex, type Writable } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import type { Keychain } from '../../oci/keychain.js';
import type { BuildkitClient } from './client.js';
import { decodeBytesMessage, encodeBytesMessage } from './proto/control.js';
import { ProtoReader, ProtoWriter } from './proto/wire.js';

/** A file an exporter streams back (FileSend.DiffCopy), chosen by the exporter's index. */
export type ExportTarget = (exporterId: string) => Writable;

const identity = (b: Buffer) => b;
const unary = (path: string) => ({ path, requestStream: false, responseStream: false, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity });
const bidi = (path: string) => ({ path, requestStream: true, responseStream: true, requestSerialize: encodeBytesMessage, requestDeserialize: decodeBytesMessage, responseSerialize: encodeBytesMessage, responseDeserialize: decodeBytesMessage });

const methods = {
  health: '/grpc.health.v1.Health/Check',
  credentials: '/moby.filesync.v1.Auth/Credentials',
  tokenAuthority: '/moby.filesync.v1.Auth/GetTokenAuthority',
  diffCopy: '/moby.filesync.v1.FileSend/DiffCopy',
} as const;

export interface Session {
  readonly id: string;
  close(): Promise<void>;
}

/**
 * BuildKit's client session: a gRPC *server*, served over the
 * Control.Session stream the client opens (the daemon dials HTTP/2 back
 * through it). It answers Health (the daemon's liveness probe),
 * Auth.Credentials from patchd's keychain (so the daemon pulls private
 * images with patchd's credentials; GetTokenAuthority is UNIMPLEMENTED, so
 * the daemon fetches tokens itself), and FileSend.DiffCopy (the `oci`
 * exporter's tarball, streamed to `exportTo`).
 */
export function openSession(client: BuildkitClient, options: { keychain?: Keychain; exportTo?: ExportTarget; onError?: (error: Error) => void }): Session {
  const id = randomBytes(13).toString('hex').slice(0, 25);
  const server = new grpc.Server();
  server.addService({ check: unary(methods.health) }, {
    // HealthCheckResponse{status: SERVING}
    check: (_call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => callback(null, new ProtoWriter().int(1, 1).finish()),
  });
  server.addService({ credentials: unary(methods.credentials), getTokenAuthority: unary(methods.tokenAuthority) }, {
    credentials: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
      const host = new ProtoReader(call.request).string(1);
      void (options.keychain?.resolve(normaliseHost(host)) ?? Promise.resolve(undefined)).then(
        (creds) => {
          const w = new ProtoWriter();
          if (creds?.identityToken) w.string(2, creds.identityToken);
          else if (creds?.username) w.string(1, creds.username).string(2, creds.password ?? '');
          callback(null, w.finish());
        },
        (error: Error) => callback({ code: grpc.status.INTERNAL, details: `credentials for ${host}: ${error.message}` }),
      );
    },
    getTokenAuthority: (_call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) =>
      callback({ code: grpc.status.UNIMPLEMENTED, details: 'patchd does not sign tokens; use Credentials' }),
  });
  server.addService({ diffCopy: bidi(methods.diffCopy) }, {
    diffCopy: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
      const exporterId = String(call.metadata.get('buildkit-attachable-exporter-id')[0] ?? '0');
      // A gRPC status error: it is the daemon's answer, sent as gRPC needs it, not one of patchd's failures.
      if (!options.exportTo) { call.destroy(Object.assign(new Error('no export target'), { code: grpc.status.FAILED_PRECONDITION })); return; }
      const sink = options.exportTo(exporterId);
      call.on('data', (chunk: Buffer) => {
        if (!sink.write(chunk)) { call.pause(); sink.once('drain', () => call.resume()); }
      });
      call.on('end', () => { sink.end(() => call.end()); });
      call.on('error', (error) => sink.destroy(error));
      sink.on('error', (error) => { options.onError?.(error); call.destroy(error); });
    },
  });

  const metadata = new grpc.Metadata();
  metadata.set('X-Docker-Expose-Session-Uuid', id);
  metadata.set('X-Docker-Expose-Session-Name', 'patchd');
  metadata.set('X-Docker-Expose-Session-Sharedkey', id);
  for (const m of [methods.health, methods.credentials, methods.tokenAuthority, ...(options.exportTo ? [methods.diffCopy] : [])]) metadata.add('X-Docker-Expose-Session-Grpc-Method', m);

  const call = client.session(metadata);
  const tunnel = new Duplex({
    read() { call.resume(); },
    write(chunk: Buffer, _encoding, callback) {
      if (call.write(chunk)) callback(); else call.once('drain', () => callback());
    },
    final(callback) { call.end(); callback(); },
  });
  call.on('data', (data: Buffer) => { if (!tunnel.push(data)) call.pause(); });
  call.on('end', () => tunnel.push(null));
  call.on('error', (error: grpc.ServiceError) => {
    if (error.code !== grpc.status.CANCELLED) options.onError?.(error);
    tunnel.destroy();
  });
  const injector = server.createConnectionInjector(grpc.ServerCredentials.createInsecure());
  injector.injectConnection(tunnel);

  return {
    id,
    async close() {
      call.cancel();
      injector.destroy();
      await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
    },
  };
}

/** The daemon asks for the registry host as it resolves it ("docker.io" becomes the index host). */
function normaliseHost(host: string): string {
  return host === 'registry-1.docker.io' ? 'docker.io' : host;
}
