import { tmpdir } from 'node:os';
import { parseArgs } from 'node:util';
import { Agent } from 'undici';
import type { Logger } from '../lib/log.js';
import type { RegistryClient } from '../oci/client.js';
import { parseReference } from '../oci/reference.js';
import { formatJson, formatSarif, formatTable } from '../scan/format.js';
import { scanImage } from '../pipeline/scan-image.js';
import { loadAdvisories, readReport } from './report.js';

export const scanUsage = `Options for scan:
  -i, --image REF          image to scan (tag or digest; every platform of an index)
  -r, --report FILE|URL    use a Trivy JSON or Harbor report instead of OSV matching
      --advisories PATH    OSV records: a directory of *.json or an all.zip (repeatable;
                           default $PATCHD_ADVISORIES, colon-separated)
      --format FORMAT      table, json or sarif [default: table on a terminal, else json]
      --no-updates         do not ask a Debian image's repositories for newer versions
                           when no advisory data covers its OS
      --plain-http         speak HTTP, not HTTPS, to the registry
`;

export interface CliContext {
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly stdoutIsTty: boolean;
  readonly write: (text: string) => void;
  readonly createLogger: () => Logger;
  readonly createClient: (args: { logger: Logger; dispatcher: Agent; registry: string; plainHttp: boolean }) => RegistryClient;
  readonly cacheDir: string;
  readonly version: string;
}

/** `patchd scan`: inventory plus findings, printed; exit 0 whatever was found. */
export async function scanCommand(argv: readonly string[], ctx: CliContext): Promise<number> {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      image: { type: 'string', short: 'i' },
      report: { type: 'string', short: 'r' },
      advisories: { type: 'string', multiple: true },
      format: { type: 'string' },
      'no-updates': { type: 'boolean', default: false },
      'plain-http': { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (!values.image) throw new UsageError('-i/--image is required');
  const format = values.format ?? (ctx.stdoutIsTty ? 'table' : 'json');
  if (format !== 'table' && format !== 'json' && format !== 'sarif') throw new UsageError(`--format takes table, json or sarif (got ${JSON.stringify(format)})`);
  const image = parseReference(values.image);
  const logger = ctx.createLogger();
  const dispatcher = new Agent({ connections: 16 });
  try {
    const advisoryPaths = values.advisories ?? (ctx.env['PATCHD_ADVISORIES'] ?? '').split(':').filter(Boolean);
    const report = values.report ? await readReport(values.report, dispatcher) : undefined;
    const osv = report ? undefined : await loadAdvisories(advisoryPaths);
    const client = ctx.createClient({ logger, dispatcher, registry: image.registry, plainHttp: values['plain-http'] });
    const results = await scanImage(
      { client, dispatcher, logger, cacheDir: ctx.cacheDir, tmpDir: ctx.env['TMPDIR'] ?? tmpdir() },
      { image, advisories: { ...(osv ? { osv } : {}), ...(report ? { report } : {}) }, updates: !values['no-updates'] },
    );
    ctx.write(format === 'json' ? formatJson(results) : format === 'sarif' ? formatSarif(results, ctx.version) : formatTable(results));
    return 0;
  } finally {
    await dispatcher.close();
  }
}

export class UsageError extends Error {}
