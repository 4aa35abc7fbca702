import { PatchdError } from '../../lib/errors.js';

export class BuildkitError extends PatchdError {}
