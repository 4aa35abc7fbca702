import { parseArgs } from 'node:util';
import { Agent } from 'undici';
import { UsageError } from '../lib/errors.js';
import { createRegistryClient } from '../oci/client.js';
import { formatReference, parseReference, type Reference } from '../oci/reference.js';
import { scanImage } from '../pipeline/scan-image.js';
import { formatCycloneDx, formatJson, formatSarif, formatTable, type ScanResult } from '../scan/format.js';
import { ociPurl } from '../publish/openvex.js';
import type { BomSubject } from '../scan/cyclonedx.js';
import { closeWithin, commandKeychain, defaultCacheDir, logLevel, type CliContext } from './context.js';
import { loadAdvisories, readReport } from './report.js';
import { mirrorOptions, mirrorsFromFlags } from './mirrors.js';

/** `patchd scan`: inventory plus findings, printed; exit 0 whatever was found, 1 when the scan itself failed. */
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
      'log-level': { type: 'string' },
      'apt-mirror': mirrorOptions['apt-mirror'],
    },
    strict: true,
  });
  if (!values.image) throw new UsageError('-i/--image is required');
  const mirrors = mirrorsFromFlags(values, ctx.env);
  const format = values.format ?? (ctx.stdout.isTTY ? 'table' : 'json');
  if (format !== 'table' && format !== 'json' && format !== 'sarif' && format !== 'cyclonedx') throw new UsageError(`--format takes table, json, sarif or cyclonedx (got ${JSON.stringify(format)})`);
  const image = parseReference(values.image);
  const logger = ctx.createLogger(logLevel(ctx, values['log-level'], 'warn'));
  const dispatcher = new Agent({ connections: 16 });
  try {
    const advisoryPaths = values.advisories ?? (ctx.env['PATCHD_ADVISORIES'] ?? '').split(':').filter(Boolean);
    const report = values.report ? await readReport(values.report, dispatcher) : undefined;
    const osv = report ? undefined : await loadAdvisories(advisoryPaths);
    const client = createRegistryClient({ logger, dispatcher, keychain: commandKeychain(ctx, image.registry), ...(values['plain-http'] ? { plainHttp: true } : {}) });
    const results = await scanImage(
      { client, dispatcher, logger, cacheDir: defaultCacheDir(ctx), tmpDir: ctx.tmpDir, mirrors },
      { image, advisories: { ...(osv ? { osv } : {}), ...(report ? { report } : {}) }, updates: !values['no-updates'] },
    );
    ctx.stdout.write(
      format === 'json' ? formatJson(results)
        : format === 'sarif' ? formatSarif(results, ctx.version)
          : format === 'cyclonedx' ? formatCycloneDx(results, ctx.version, bomSubject(image, results))
            : formatTable(results),
    );
    return 0;
  } finally {
    await closeWithin(dispatcher);
  }
}

/** The image a BOM describes: the reference as given, the digest scanned (the index's, for several platforms). */
function bomSubject(image: Reference, results: readonly ScanResult[]): BomSubject {
  const digest = results.length === 1 ? results[0]!.digest : image.digest;
  return { name: formatReference(image), ...(digest ? { digest, purl: ociPurl(image, digest) } : {}) };
}
