import type { z } from 'zod';
import type { ReceivedEvents } from './events.js';
import { acrEvents, AcrPayload, distributionEvents, DistributionEnvelope, ghcrEvents, GithubPackagePayload, harborEvents, HarborPayload } from './payloads.js';
import { authorizationMatches, githubSignatureMatches } from './authenticate.js';

export type WebhookSource = 'harbor' | 'acr' | 'ghcr' | 'distribution';

interface Receiver {
  /** Does this delivery carry `secret`? Checked over the raw bytes, before any parsing. */
  authenticated(headers: (name: string) => string | undefined, secret: string, raw: Uint8Array): boolean;
  /** Deliveries that are not events to act on (GitHub pings and other event kinds). */
  ignoredDelivery?(headers: (name: string) => string | undefined): string | undefined;
  schema: z.ZodType;
  events(payload: never): ReceivedEvents;
}

const byAuthorization = (headers: (name: string) => string | undefined, secret: string) => authorizationMatches(headers('authorization'), secret);

export const receivers: Readonly<Record<WebhookSource, Receiver>> = {
  harbor: { authenticated: byAuthorization, schema: HarborPayload, events: harborEvents as Receiver['events'] },
  acr: { authenticated: byAuthorization, schema: AcrPayload, events: acrEvents as Receiver['events'] },
  distribution: { authenticated: byAuthorization, schema: DistributionEnvelope, events: distributionEvents as Receiver['events'] },
  ghcr: {
    authenticated: (headers, secret, raw) => githubSignatureMatches(headers('x-hub-signature-256'), secret, raw),
    ignoredDelivery(headers) {
      const event = headers('x-github-event');
      if (event === 'ping') return 'ping';
      if (event && event !== 'package' && event !== 'registry_package') return `GitHub ${event} events do not trigger patching`;
      return undefined;
    },
    schema: GithubPackagePayload,
    events: ghcrEvents as Receiver['events'],
  },
};

export function isWebhookSource(value: string): value is WebhookSource {
  return Object.hasOwn(receivers, value);
}
