import type { JobQueue, JobRequest } from './types.js';

/**
 * Group commit: enqueues that arrive in the same turn of the event loop (many
 * concurrent webhooks) share one transaction, so each acknowledgement still
 * follows its own durable commit while commits stop costing one per request.
 */
export function groupCommit(queue: JobQueue): (request: JobRequest) => Promise<{ readonly id: string; readonly created: boolean }> {
  let pending: { request: JobRequest; resolve: (r: { id: string; created: boolean }) => void; reject: (e: unknown) => void }[] = [];
  const flush = async () => {
    const batch = pending;
    pending = [];
    try {
      const results = await queue.enqueueMany(batch.map((b) => b.request));
      batch.forEach((b, i) => b.resolve(results[i]!));
    } catch (error) {
      for (const b of batch) b.reject(error);
    }
  };
  return (request) => new Promise((resolve, reject) => {
    if (pending.length === 0) setImmediate(() => void flush());
    pending.push({ request, resolve, reject });
  });
}
