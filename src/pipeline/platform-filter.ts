import { PipelineError } from './context.js';

/**
 * Copa's --platform: `os/arch[/variant]`. A filter without a variant matches
 * every variant of its architecture; arm64's variant is v8 when an index
 * leaves it out (as containerd normalises it).
 */
export function platformFilter(platforms: readonly string[] | undefined): ((platform: string) => boolean) | undefined {
  if (!platforms || platforms.length === 0) return undefined;
  const wanted = platforms.map((p) => {
    const parts = p.trim().split('/');
    if (parts.length < 2 || parts.length > 3 || parts.some((x) => !/^[a-z0-9_.-]+$/i.test(x))) {
      throw new PipelineError('PLATFORM_INVALID', `platform ${JSON.stringify(p)} is not os/arch or os/arch/variant (e.g. linux/amd64, linux/arm64/v8)`);
    }
    return normalise(parts);
  });
  return (platform) => {
    const [os, arch, variant] = normalise(platform.split('/'));
    return wanted.some((w) => w[0] === os && w[1] === arch && (w[2] === undefined || w[2] === variant));
  };
}

function normalise([os, arch, variant]: readonly (string | undefined)[]): [string, string, string | undefined] {
  const a = (arch ?? '').toLowerCase();
  return [(os ?? '').toLowerCase(), a, variant?.toLowerCase() ?? (a === 'arm64' ? 'v8' : undefined)];
}
