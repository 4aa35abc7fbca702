import { dotnetExecutor } from '../executors/dotnet/executor.js';
import { goExecutor } from '../executors/go/executor.js';
import type { LibraryExecutor } from '../executors/library/types.js';
import { npmExecutor } from '../executors/npm/executor.js';
import { pythonExecutor } from '../executors/python/executor.js';

/** The executor of each library ecosystem; an ecosystem without one is reported as not installable. */
export const libraryExecutors: readonly LibraryExecutor[] = [dotnetExecutor, goExecutor, npmExecutor, pythonExecutor];
