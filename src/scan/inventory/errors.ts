import { codedError, type ErrorCodes } from '../../lib/errors.js';

/** A package record in the image that cannot be read (the collector reports it as a warning and reads on). */
export const inventoryCodes = { RECORD_INVALID: 'input' } as const satisfies ErrorCodes;
export class InventoryError extends codedError(inventoryCodes) {}
