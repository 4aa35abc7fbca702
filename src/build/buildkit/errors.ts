import { PatchdError } from '../../errors.js';

export class BuildkitError extends PatchdError {}
