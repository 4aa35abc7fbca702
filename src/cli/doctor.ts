import { parseArgs } from 'node:util';
import { readConfigFile } from '../config.js';
import { checkDaemon } from '../executors/buildkit/doctor.js';
import { UsageError } from '../lib/errors.js';
import { logLevel, type CliContext } from './context.js';

/** `patchd doctor`: is the BuildKit daemon there, usable by us, new enough? Prints what it found; exit 1 when not. */
export async function doctorCommand(argv: readonly string[], ctx: CliContext): Promise<number> {
  const { values } = parseArgs({
    args: [...argv],
    options: { 'buildkit-addr': { type: 'string' }, config: { type: 'string', short: 'c' }, 'log-level': { type: 'string' } },
    strict: true,
  });
  const logger = ctx.createLogger(logLevel(ctx, values['log-level'], 'warn'));
  let address = values['buildkit-addr'] ?? ctx.env['PATCHD_BUILDKIT_ADDR'] ?? ctx.env['BUILDKIT_HOST'];
  let tls;
  if (!address && values.config) {
    const config = await readConfigFile(ctx.env, values.config);
    address = config.buildkit?.address;
    tls = config.buildkit?.tls;
  }
  if (!address) throw new UsageError('doctor: no BuildKit address (--buildkit-addr, $PATCHD_BUILDKIT_ADDR, or buildkit.address in --config)');
  const report = await checkDaemon({ address, ...(tls ? { tls } : {}) });
  logger.debug({ buildkit: report }, 'buildkit checked');
  ctx.stdout.write(`buildkit ${report.address}: ${report.version}, diff/merge ok\n`);
  for (const w of report.workers) ctx.stdout.write(`  worker ${w.id}: ${w.executor ?? '?'} executor, ${w.snapshotter ?? '?'} snapshotter, ${w.platforms.join(' ')}\n`);
  return 0;
}
