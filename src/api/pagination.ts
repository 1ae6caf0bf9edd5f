/**
 * Opaque keyset cursors: base64url JSON of the last item's sort key. A client passes back the
 * `next_cursor` of a page as `cursor` to get the next one.
 */
import { ApiError } from './errors.js';

/** Encode a cursor. */
export function encodeCursor(value: unknown): string {
  return Buffer.from(JSON.stringify(value), 'utf8').toString('base64url');
}

/**
 * Decode a cursor and check its shape.
 * @throws ApiError 400 INVALID_CURSOR when it is not one this server made
 */
export function decodeCursor<T>(cursor: string, check: (v: unknown) => v is T): T {
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    v = undefined;
  }
  if (!check(v))
    throw new ApiError(
      400,
      'INVALID_CURSOR',
      'cursor is not valid: pass back the next_cursor of the previous page',
    );
  return v;
}
