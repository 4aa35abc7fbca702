import type { FsQuery, ImageFilesystem } from './filesystem.js';

/** A read of an image's merged view and what it answered (ImageFilesystem.fingerprint). */
export interface RecordedRead extends FsQuery {
  readonly answer: string;
}

export interface ReadRecorder {
  /** The same view; every read through it is recorded. */
  readonly fs: ImageFilesystem;
  /** Each distinct read made so far, with its answer on the recorded view. */
  reads(): RecordedRead[];
}

const queryMethods: ReadonlySet<string> = new Set<FsQuery['op']>(['lstat', 'stat', 'entryAt', 'realpath', 'readdir', 'readFile', 'entries']);

/**
 * Records what is read of `fs`: whatever is computed only from those reads
 * is the same for any image that answers them all the same (`answersSame`),
 * which is what lets a patch layer built for one image serve the next push
 * of the same base with a different app layer on top.
 */
export function recordReads(fs: ImageFilesystem): ReadRecorder {
  const queries = new Map<string, FsQuery>();
  const recording = new Proxy(fs, {
    get(target, property) {
      const value: unknown = Reflect.get(target, property, target);
      if (typeof value !== 'function') return value;
      if (typeof property !== 'string' || !queryMethods.has(property)) return value.bind(target);
      const op = property as FsQuery['op'];
      return (...args: unknown[]) => {
        const path = op === 'entries' ? '' : String(args[0]);
        queries.set(`${op}\0${path}`, { op, path });
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return {
    fs: recording,
    reads: () => [...queries.values()].map((query) => ({ ...query, answer: fs.fingerprint(query) })),
  };
}

/** Whether `fs` answers every recorded read as the recorded view did. */
export function answersSame(fs: ImageFilesystem, reads: readonly RecordedRead[]): boolean {
  return reads.every((read) => fs.fingerprint(read) === read.answer);
}
