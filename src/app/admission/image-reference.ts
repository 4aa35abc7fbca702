import type { Reference } from '../../oci/reference.js';
import { AdmissionError } from './errors.js';

// What a container runtime makes of a Pod's `image` string: the distribution
// reference grammar (github.com/distribution/reference, regexp.go) with
// Docker's normalisation (normalize.go, ParseDockerRef's input rules).
// oci/reference.ts parses what patchd is given on its command line; this one
// must agree with the kubelet on every string a cluster may hold, so it also
// checks the host part, refuses upper case and 64-hex names, and folds
// index.docker.io into docker.io.

const domainComponent = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const domainAndPort = `(?:${domainComponent}(?:\\.${domainComponent})*|\\[[a-fA-F0-9:]+\\])(?::[0-9]+)?`;
const pathComponent = '[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*';
const tag = '[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}';
const digest = '[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}';

const domainPattern = new RegExp(`^${domainAndPort}$`);
const remainderPattern = new RegExp(`^(${pathComponent}(?:/${pathComponent})*)(?::(${tag}))?(?:@(${digest}))?$`);
const identifierPattern = /^[a-f0-9]{64}$/;
/** The algorithms go-digest registers, with the length of their lower-case hex. */
const digestLengths: Readonly<Record<string, number>> = { sha256: 64, sha384: 96, sha512: 128 };

const dockerHub = 'docker.io';
const legacyDockerHub = 'index.docker.io';
const repositoryMaxLength = 255;
/** Far above any valid reference (host 255 + path 255 + tag 128 + sha512 digest): bounds the regular expressions' work. */
const inputMaxLength = 1024;

/**
 * `nginx` → docker.io/library/nginx:latest, `user/app` → docker.io/user/app:latest,
 * `localhost:5000/x` and `registry.example.com:5000/a/b:t@sha256:…` keep their
 * host; a name with a digest gets no default tag. Throws IMAGE_INVALID with
 * the rule broken.
 */
export function normalizeImageReference(input: string): Reference {
  const invalid = (why: string) => new AdmissionError('IMAGE_INVALID', `invalid image reference ${JSON.stringify(input.slice(0, 300))}: ${why}`);
  if (input === '') throw invalid('empty');
  if (input.length > inputMaxLength) throw invalid(`longer than ${inputMaxLength} characters`);
  if (input.trim() !== input) throw invalid('leading or trailing whitespace');
  if (identifierPattern.test(input)) throw invalid('a 64-character hexadecimal string is an image ID, not a name');

  const { registry, remainder } = splitRegistry(input);
  if (!domainPattern.test(registry)) throw invalid(`bad registry host ${JSON.stringify(registry)}`);
  const name = remainder.split(/[:@]/, 1)[0]!;
  if (name.toLowerCase() !== name) throw invalid('repository name must be lowercase');
  const match = remainderPattern.exec(remainder);
  if (!match) throw invalid('not a valid repository[:tag][@digest]');
  const [, repository, tagPart, digestPart] = match;
  if (repository!.length > repositoryMaxLength) throw invalid(`repository name longer than ${repositoryMaxLength} characters`);
  if (digestPart) {
    const [algorithm, hex] = digestPart.split(':') as [string, string];
    const length = digestLengths[algorithm];
    if (length === undefined) throw invalid(`unsupported digest algorithm ${algorithm}`);
    if (hex.length !== length || !/^[a-f0-9]+$/.test(hex)) throw invalid(`a ${algorithm} digest is ${length} lower-case hex digits`);
  }
  return {
    registry,
    repository: repository!,
    ...(tagPart ? { tag: tagPart } : digestPart ? {} : { tag: 'latest' }),
    ...(digestPart ? { digest: digestPart } : {}),
  };
}

/**
 * The first path segment is a registry host when it is `localhost`, holds a
 * '.' or ':', or has upper case (repository names cannot); a single segment
 * is always an official Docker Hub image.
 */
function splitRegistry(input: string): { registry: string; remainder: string } {
  const slash = input.indexOf('/');
  if (slash < 0) return { registry: dockerHub, remainder: `library/${input}` };
  const first = input.slice(0, slash);
  const rest = input.slice(slash + 1);
  let registry: string;
  let remainder: string;
  if (first === 'localhost' || /[.:]/.test(first) || first.toLowerCase() !== first) {
    registry = first === legacyDockerHub ? dockerHub : first;
    remainder = rest;
  } else {
    registry = dockerHub;
    remainder = input;
  }
  if (registry === dockerHub && !remainder.split(/[:@]/, 1)[0]!.includes('/')) remainder = `library/${remainder}`;
  return { registry, remainder };
}
