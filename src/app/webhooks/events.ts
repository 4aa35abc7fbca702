/** A push a registry told us about, whatever the sender's payload looked like. */
export interface PushEvent {
  readonly source: 'harbor' | 'acr' | 'ghcr' | 'distribution';
  /** The registry host as the sender names it ('harbor.example.com', 'ghcr.io'); mapped to a configured registry before any request. */
  readonly host: string;
  readonly repository: string;
  readonly tag?: string;
  readonly digest?: string;
  readonly mediaType?: string;
  /** Who pushed, where the payload says (Harbor's operator, distribution's actor). */
  readonly actor?: string;
  /** The pushing client's User-Agent, where the payload carries it (distribution, ACR). */
  readonly userAgent?: string;
  readonly trigger: 'push' | 'scan-completed';
  /** Harbor's scan report id (or its end time) for scan-completed: a new one re-evaluates an original patchd already patched. */
  readonly scanRevision?: string;
}

/** What a receiver made of one delivery: events to enqueue, and events it deliberately ignored (with why). */
export interface ReceivedEvents {
  readonly events: readonly PushEvent[];
  readonly ignored: readonly string[];
}

export const sha256DigestPattern = /^sha256:[0-9a-f]{64}$/;

/** A digest we can act on, or undefined (placeholders like Azure's `xxxx` examples, or truncated ones). */
export function usableDigest(value: unknown): string | undefined {
  return typeof value === 'string' && sha256DigestPattern.test(value) ? value : undefined;
}

/** A tag we can act on: digest pushes often put the digest (or nothing) where the tag goes. */
export function usableTag(value: unknown): string | undefined {
  return typeof value === 'string' && /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/.test(value) ? value : undefined;
}

/**
 * Loop prevention: our own `<tag><suffix>` and `<tag><suffix>-N` pushes, the
 * signature and referrer tags we (or cosign) write, and pushes by our own
 * registry identity, are not patched again.
 */
export function isOwnOutput(event: PushEvent, options: { readonly tagSuffix: string; readonly ownActors?: readonly string[] }): string | undefined {
  if (event.tag && (event.tag.endsWith(options.tagSuffix) || new RegExp(`${escapeRegExp(options.tagSuffix)}-\\d+$`).test(event.tag))) {
    return `tag ${event.tag} is patchd output`;
  }
  // cosign's signature/attestation tags and the referrers tag fallback: artifacts about an image, never images to patch.
  if (event.tag && /^sha256-[0-9a-f]{64}(\.(sig|att|sbom))?$/.test(event.tag)) return `tag ${event.tag} holds signatures or referrers of an image`;
  if (event.actor && options.ownActors?.includes(event.actor)) return `pushed by patchd's own identity ${event.actor}`;
  // patchd's own registry client: the patched manifest pushed by digest before its tag, VEX/SBOM referrers, signatures.
  if (event.userAgent && ownUserAgent.test(event.userAgent)) return `pushed by patchd itself (${event.userAgent})`;
  return undefined;
}

/** What src/oci/transport.ts sends as User-Agent. */
const ownUserAgent = /^patchd\/\S+/;

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
