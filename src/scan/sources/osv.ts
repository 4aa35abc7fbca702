import { open, readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { codedError, type ErrorCodes } from '../../lib/errors.js';
import { normalisePythonName } from '../inventory/readers/python.js';
import { zipEntries } from '../../lib/zip.js';

/** OSV advisory data given to patchd (directories of records, all.zip files). */
export const advisoryCodes = {
  ADVISORIES_MISSING: 'input',
  ADVISORIES_INVALID: 'input',
  ADVISORY_INVALID: 'input',
} as const satisfies ErrorCodes;
export type AdvisoryCode = keyof typeof advisoryCodes;

export class AdvisoryError extends codedError(advisoryCodes) {}

const EventSchema = z.looseObject({
  introduced: z.string().optional(), fixed: z.string().optional(), last_affected: z.string().optional(), limit: z.string().optional(),
});
const AffectedSchema = z.looseObject({
  package: z.looseObject({ ecosystem: z.string(), name: z.string() }).optional(),
  ranges: z.array(z.looseObject({ type: z.string(), events: z.array(EventSchema) })).optional(),
  versions: z.array(z.string()).optional(),
  ecosystem_specific: z.record(z.string(), z.unknown()).optional(),
  database_specific: z.record(z.string(), z.unknown()).optional(),
});
export const OsvRecordSchema = z.looseObject({
  id: z.string().min(1),
  modified: z.string().optional(),
  withdrawn: z.string().optional(),
  aliases: z.array(z.string()).optional(),
  upstream: z.array(z.string()).optional(),
  summary: z.string().optional(),
  details: z.string().optional(),
  affected: z.array(AffectedSchema).optional(),
  database_specific: z.record(z.string(), z.unknown()).optional(),
});

export type OsvEvent = z.infer<typeof EventSchema>;

/** The part of one `affected[]` entry matching needs, plus the record facts a finding reports. */
export interface OsvAffected {
  readonly id: string;
  readonly aliases: readonly string[];
  readonly summary?: string;
  readonly severity?: string;
  readonly ecosystem: string;
  readonly name: string;
  readonly ranges: readonly { readonly type: string; readonly events: readonly OsvEvent[] }[];
  readonly versions: readonly string[];
}

/** Names are indexed as each ecosystem compares them (PyPI normalised, NuGet case-insensitive). */
export function osvNameKey(ecosystem: string, name: string): string {
  const base = ecosystem.split(':')[0]!;
  if (base === 'PyPI') return normalisePythonName(name);
  if (base === 'NuGet') return name.toLowerCase();
  return name;
}

/**
 * OSV advisories loaded from directories of `*.json` records and the
 * per-ecosystem `all.zip` archives an operator mirrors from osv.dev, indexed
 * by ecosystem and package name. Only affected entries are kept in memory.
 */
export class OsvDatabase {
  private readonly byEcosystem = new Map<string, Map<string, OsvAffected[]>>();
  private count = 0;

  get recordCount(): number { return this.count; }

  static async load(paths: readonly string[]): Promise<OsvDatabase> {
    const db = new OsvDatabase();
    for (const path of paths) await db.addPath(path);
    return db;
  }

  /** Whether any record is filed under this ecosystem (prefix as in lookup). */
  covers(ecosystemPrefix: string): boolean {
    for (const ecosystem of this.byEcosystem.keys()) if (ecosystem === ecosystemPrefix || ecosystem.startsWith(`${ecosystemPrefix}:`)) return true;
    return false;
  }

  /** Affected entries for `name` in every ecosystem whose name starts with `ecosystemPrefix` (e.g. 'Ubuntu:22.04' matches 'Ubuntu:22.04:LTS'). */
  lookup(ecosystemPrefix: string, name: string): OsvAffected[] {
    const out: OsvAffected[] = [];
    for (const [ecosystem, byName] of this.byEcosystem) {
      if (ecosystem !== ecosystemPrefix && !ecosystem.startsWith(`${ecosystemPrefix}:`)) continue;
      out.push(...(byName.get(osvNameKey(ecosystem, name)) ?? []));
    }
    return out;
  }

  add(json: unknown, origin: string): void {
    const parsed = OsvRecordSchema.safeParse(json);
    if (!parsed.success) throw new AdvisoryError('ADVISORY_INVALID', `${origin} is not an OSV record: ${z.prettifyError(parsed.error)}`);
    const record = parsed.data;
    if (record.withdrawn) return;
    this.count++;
    const severity = typeof record.database_specific?.['severity'] === 'string' ? record.database_specific['severity'] : undefined;
    for (const affected of record.affected ?? []) {
      if (!affected.package) continue;
      const { ecosystem, name } = affected.package;
      const urgency = affected.ecosystem_specific?.['urgency'] ?? affected.database_specific?.['severity'];
      const entry: OsvAffected = {
        id: record.id,
        // Debian's and Ubuntu's records name the CVE they track in `upstream`.
        aliases: [...new Set([...(record.aliases ?? []), ...(record.upstream ?? [])])],
        ...(record.summary ? { summary: record.summary } : {}),
        ...(severity ?? (typeof urgency === 'string' ? urgency : undefined) ? { severity: severity ?? (urgency as string) } : {}),
        ecosystem, name,
        ranges: (affected.ranges ?? []).map((r) => ({ type: r.type, events: r.events })),
        versions: affected.versions ?? [],
      };
      let byName = this.byEcosystem.get(ecosystem);
      if (!byName) this.byEcosystem.set(ecosystem, (byName = new Map()));
      const key = osvNameKey(ecosystem, name);
      const list = byName.get(key);
      if (list) list.push(entry); else byName.set(key, [entry]);
    }
  }

  private async addPath(path: string): Promise<void> {
    const info = await stat(path).catch((error: NodeJS.ErrnoException) => {
      throw new AdvisoryError('ADVISORIES_MISSING', `advisory path ${path}: ${error.code === 'ENOENT' ? 'does not exist' : error.message}`);
    });
    if (info.isDirectory()) {
      for (const entry of (await readdir(path, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1))) {
        const child = join(path, entry.name);
        if (entry.isDirectory() || entry.name.endsWith('.zip') || entry.name.endsWith('.json')) await this.addPath(child);
      }
      return;
    }
    if (path.endsWith('.zip')) {
      const handle = await open(path, 'r');
      try {
        for await (const { name, data } of zipEntries(handle)) {
          if (name.endsWith('.json')) this.add(parseJson(data, `${path}!${name}`), `${path}!${name}`);
        }
      } catch (error) {
        if (error instanceof AdvisoryError) throw error;
        throw new AdvisoryError('ADVISORIES_INVALID', `${path}: ${(error as Error).message}`);
      } finally {
        await handle.close();
      }
      return;
    }
    this.add(parseJson(await readFile(path), path), path);
  }
}

function parseJson(data: Buffer, origin: string): unknown {
  try {
    return JSON.parse(data.toString('utf8'));
  } catch (error) {
    throw new AdvisoryError('ADVISORY_INVALID', `${origin}: ${(error as Error).message}`);
  }
}
