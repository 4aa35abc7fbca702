import { readFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { pino } from 'pino';
import type { CliContext } from './cli/context.js';
import { usage } from './cli/usage.js';
import { PatchdError, UsageError } from './lib/errors.js';
import { createLogger } from './lib/log.js';

type Command = (argv: readonly string[], ctx: CliContext) => Promise<number>;

/** Each command's module is loaded when it runs: `patch` does not start by loading serve's HTTP stack, nor the others. */
const commands: Record<string, () => Promise<Command>> = {
  patch: async () => (await import('./cli/patch.js')).patchCommand,
  scan: async () => (await import('./cli/scan.js')).scanCommand,
  serve: async () => (await import('./cli/serve.js')).serveCommand,
  doctor: async () => (await import('./cli/doctor.js')).doctorCommand,
};

/**
 * The CLI's dispatcher, and the only module that reads process state (argv,
 * env, TTYs, signals). Exit codes: 0 done, 1 failed, 2 wrong usage.
 */
export async function main(argv: readonly string[], ctx: CliContext = processContext()): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '-h' || name === '--help' || name === 'help') {
    ctx.stdout.write(usage);
    return name ? 0 : 2;
  }
  const load = commands[name];
  if (!load) {
    ctx.stderr.write(`patchd: unknown command "${name}"\n\n${usage}`);
    return 2;
  }
  if (rest.includes('-h') || rest.includes('--help')) {
    ctx.stdout.write(usage);
    return 0;
  }
  try {
    return await (await load())(rest, ctx);
  } catch (error) {
    if (error instanceof UsageError || (error as { code?: unknown }).code?.toString().startsWith('ERR_PARSE_ARGS')) {
      ctx.stderr.write(`patchd: ${(error as Error).message}\nRun "patchd --help" for the options.\n`);
      return 2;
    }
    ctx.stderr.write(error instanceof PatchdError
      ? `patchd: ${error.message} [${error.code}]\n`
      : `patchd: unexpected failure: ${(error as Error)?.stack ?? String(error)}\n`);
    return 1;
  }
}

function processContext(): CliContext {
  return {
    env: process.env,
    stdout: { write: (text) => { process.stdout.write(text); }, isTTY: Boolean(process.stdout.isTTY) },
    stderr: { write: (text) => { process.stderr.write(text); }, isTTY: Boolean(process.stderr.isTTY) },
    createLogger: (level) => createLogger({ level, destination: pino.destination({ fd: 2, sync: true }) }),
    homeDir: homedir(),
    tmpDir: process.env.TMPDIR ?? tmpdir(),
    version: packageVersion(),
    onStopSignal: (handler) => {
      let stopping = false;
      const once = (signal: string) => { if (!stopping) { stopping = true; handler(signal); } };
      process.once('SIGTERM', () => once('SIGTERM'));
      process.once('SIGINT', () => once('SIGINT'));
    },
  };
}

function packageVersion(): string {
  try {
    return (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}
