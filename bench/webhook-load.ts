// The load generator for bench/webhooks.bench.ts, run as its own process so
// the server under test has the other core: autocannon against one URL, each
// request a distinct distribution push (a new digest: every ack is a durable insert).
import autocannon from 'autocannon';

const [url, secret, host, seconds, connections] = process.argv.slice(2);
let n = 0;
const result = await autocannon({
  url: url!,
  method: 'POST',
  connections: Number(connections ?? 32),
  duration: Number(seconds ?? 10),
  headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/vnd.docker.distribution.events.v1+json' },
  requests: [{
    setupRequest(request: autocannon.Request) {
      const digest = `sha256:${(n++).toString(16).padStart(64, '0')}`;
      return { ...request, body: JSON.stringify({ events: [{ action: 'push', target: { mediaType: 'application/vnd.oci.image.manifest.v1+json', repository: 'bench/app', digest, tag: 'v1' }, request: { host } }] }) };
    },
  }],
});
process.stdout.write(`${JSON.stringify({ requests: result.requests, latency: result.latency, non2xx: result.non2xx, errors: result.errors, duration: result.duration, statusCodeStats: result.statusCodeStats })}\n`);
