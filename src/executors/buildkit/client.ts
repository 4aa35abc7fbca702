import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import {
  decodeBytesMessage, decodeInfoResponse, decodeSolveResponse, decodeStatusResponse, decodeWorkers,
  encodeBytesMessage, encodeSolveRequest, encodeStatusRequest, type SolveRequest, type StatusUpdate,
} from './proto/control.js';
import { BuildkitError } from './errors.js';

const service = '/moby.buildkit.v1.Control';
const identity = (b: Buffer) => b;

/** Where buildkitd listens: unix:///run/buildkit/buildkitd.sock or tcp://host:port (mTLS files optional). */
export interface BuildkitAddress {
  readonly address: string;
  readonly tls?: { readonly caFile?: string; readonly certFile?: string; readonly keyFile?: string; readonly serverName?: string };
}

/**
 * BuildKit's Control API over gRPC (@grpc/grpc-js), with the messages
 * encoded by hand (proto/): Info, ListWorkers, Solve, Status and the Session
 * stream patchd serves its attachables over.
 */
export class BuildkitClient {
  private readonly client: grpc.Client;

  constructor(readonly options: BuildkitAddress) {
    const { target, credentials, channelOptions } = channelFor(options);
    this.client = new grpc.Client(target, credentials, { 'grpc.max_receive_message_length': 64 * 2 ** 20, ...channelOptions });
  }

  info(deadlineMs = 10_000): Promise<{ package: string; version: string; revision: string }> {
    return this.unary('Info', Buffer.alloc(0), deadlineMs).then(decodeInfoResponse);
  }

  listWorkers(deadlineMs = 10_000): Promise<ReturnType<typeof decodeWorkers>> {
    return this.unary('ListWorkers', Buffer.alloc(0), deadlineMs).then(decodeWorkers);
  }

  solve(request: SolveRequest): Promise<{ exporterResponse: Record<string, string> }> {
    return this.unary('Solve', encodeSolveRequest(request)).then(decodeSolveResponse);
  }

  /** Progress of a solve: vertex names and logs as the daemon reports them; ends when the solve does. */
  status(ref: string, onUpdate: (update: StatusUpdate) => void): Promise<void> {
    return new Promise((resolve, reject) => {
      const call = this.client.makeServerStreamRequest(`${service}/Status`, identity, identity, encodeStatusRequest(ref), new grpc.Metadata(), {});
      call.on('data', (data: Buffer) => { try { onUpdate(decodeStatusResponse(data)); } catch (error) { reject(error); } });
      call.on('error', (error: grpc.ServiceError) => (error.code === grpc.status.CANCELLED ? resolve() : reject(asBuildkitError(error, 'Status'))));
      call.on('end', () => resolve());
    });
  }

  /** The raw Session stream: each BytesMessage carries bytes of the HTTP/2 connection the daemon dials back over. */
  session(metadata: grpc.Metadata): grpc.ClientDuplexStream<Buffer, Buffer> {
    return this.client.makeBidiStreamRequest(`${service}/Session`, encodeBytesMessage, decodeBytesMessage, metadata, {});
  }

  close(): void {
    this.client.close();
  }

  private unary(method: string, request: Buffer, deadlineMs?: number): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const options: grpc.CallOptions = deadlineMs ? { deadline: Date.now() + deadlineMs } : {};
      this.client.makeUnaryRequest(`${service}/${method}`, identity, identity, request, new grpc.Metadata(), options, (error, response) => {
        if (error) reject(asBuildkitError(error, method));
        else resolve(response ?? Buffer.alloc(0));
      });
    });
  }
}

function channelFor(options: BuildkitAddress): { target: string; credentials: grpc.ChannelCredentials; channelOptions: grpc.ChannelOptions } {
  const { address } = options;
  if (address.startsWith('unix://')) return { target: address, credentials: grpc.credentials.createInsecure(), channelOptions: {} };
  if (address.startsWith('tcp://')) {
    const target = address.slice('tcp://'.length);
    if (!options.tls) return { target, credentials: grpc.credentials.createInsecure(), channelOptions: {} };
    const read = (file?: string) => (file ? readFileSync(file) : null);
    const credentials = grpc.credentials.createSsl(read(options.tls.caFile), read(options.tls.keyFile), read(options.tls.certFile));
    return { target, credentials, channelOptions: options.tls.serverName ? { 'grpc.ssl_target_name_override': options.tls.serverName } : {} };
  }
  throw new BuildkitError('BUILDKIT_ADDRESS_INVALID', `BuildKit address ${address} is neither unix:///path nor tcp://host:port`);
}

function asBuildkitError(error: grpc.ServiceError, method: string): BuildkitError {
  const unreachable = error.code === grpc.status.UNAVAILABLE || error.code === grpc.status.DEADLINE_EXCEEDED;
  return new BuildkitError(unreachable ? 'BUILDKIT_UNAVAILABLE' : 'BUILDKIT_SOLVE_FAILED', `buildkitd ${method}: ${error.details || error.message}`, { cause: error });
}
