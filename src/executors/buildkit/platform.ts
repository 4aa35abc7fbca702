import { arch } from 'node:os';

/** The platform BuildKit runs tooling images on natively here, as OCI names it (x64 → amd64, ia32 → 386). */
export function builderArchitecture(): string {
  const a = arch();
  return ({ x64: 'amd64', ia32: '386', ppc64: 'ppc64le' } as Record<string, string>)[a] ?? a;
}
