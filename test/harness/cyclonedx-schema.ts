import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { Ajv, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';

// The official CycloneDX 1.6 JSON schema (with the SPDX licence list and JSF
// it refers to), as @cyclonedx/cyclonedx-library ships it, compiled by ajv.

const require = createRequire(import.meta.url);
const schemaDir = join(dirname(require.resolve('@cyclonedx/cyclonedx-library/package.json')), 'res', 'schema');
const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv;

let compiled: Promise<ValidateFunction> | undefined;

async function load(): Promise<ValidateFunction> {
  const read = async (name: string) => JSON.parse(await readFile(join(schemaDir, name), 'utf8')) as Record<string, unknown>;
  // The bom schema names its neighbours by their SNAPSHOT file names, relative to its own $id.
  const spdx = { ...(await read('spdx.SNAPSHOT.schema.json')), $id: 'http://cyclonedx.org/schema/spdx.SNAPSHOT.schema.json' };
  const jsf = { ...(await read('jsf-0.82.SNAPSHOT.schema.json')), $id: 'http://cyclonedx.org/schema/jsf-0.82.SNAPSHOT.schema.json' };
  const ajv = new Ajv({ strict: false, allErrors: true, schemas: [spdx, jsf] });
  addFormats(ajv);
  // Formats ajv-formats leaves out (draft 2019's IRIs and internationalised e-mail), checked loosely.
  ajv.addFormat('iri-reference', (s: string) => { try { new URL(s, 'http://base.invalid/'); return true; } catch { return false; } });
  ajv.addFormat('idn-email', /^[^\s@]+@[^\s@]+$/u);
  return ajv.compile(await read('bom-1.6.SNAPSHOT.schema.json'));
}

/** The schema's complaints about `bom` (an empty list when it is valid CycloneDX 1.6). */
export async function cycloneDx16Errors(bom: unknown): Promise<string[]> {
  compiled ??= load();
  const validate = await compiled;
  return validate(bom) ? [] : (validate.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message ?? ''} ${JSON.stringify(e.params)}`);
}
