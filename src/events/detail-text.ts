/**
 * The human text of a rejection (`error.detail` in the DLQ, `detail` in quarantine), made
 * safe whatever the record held: error messages quote the offending input (JSON.parse quotes
 * the bytes it choked on, zod lists unknown keys), so the text can carry NUL, control
 * characters, unpaired surrogates or tens of KiB. Postgres text refuses NUL, UTF-8 cannot
 * encode a lone surrogate, and a header that size would crowd the DLQ record; any of them
 * used to fail the micro-batch transaction and stall the partition for good.
 */

/** CONTRACT.md §1: `error.detail` is at most 1 KiB. */
export const MAX_DETAIL_BYTES = 1024;
const ELLIPSIS = '…';

/**
 * Control characters (C0, DEL, C1) become `\u00XX` escapes, unpaired surrogates U+FFFD, and
 * the result is cut to at most MAX_DETAIL_BYTES of UTF-8 on a character boundary, ending in
 * `…` when cut. Plain printable text passes unchanged.
 */
export function toDetailText(raw: string): string {
  const pieces: string[] = [];
  let bytes = 0;
  // Sanitize only as far as the limit: the input can be as long as a record.
  for (let i = 0; i < raw.length && bytes <= MAX_DETAIL_BYTES; i++) {
    const unit = raw.charCodeAt(i);
    let piece: string;
    if (unit < 0x20 || (unit >= 0x7f && unit <= 0x9f)) {
      piece = `\\u${unit.toString(16).padStart(4, '0')}`;
    } else if (unit >= 0xd800 && unit <= 0xdbff && i + 1 < raw.length && isLowSurrogate(raw.charCodeAt(i + 1))) {
      piece = raw.slice(i, i + 2);
      i++;
    } else if (unit >= 0xd800 && unit <= 0xdfff) {
      piece = '\ufffd';
    } else {
      piece = raw[i] as string;
    }
    pieces.push(piece);
    bytes += utf8Length(piece);
  }
  if (bytes <= MAX_DETAIL_BYTES) return pieces.join('');
  const budget = MAX_DETAIL_BYTES - utf8Length(ELLIPSIS);
  let out = '';
  let used = 0;
  for (const piece of pieces) {
    const size = utf8Length(piece);
    if (used + size > budget) break;
    out += piece;
    used += size;
  }
  return out + ELLIPSIS;
}

function isLowSurrogate(unit: number): boolean {
  return unit >= 0xdc00 && unit <= 0xdfff;
}

/** UTF-8 length of one piece: a character, a surrogate pair, or an ASCII escape. */
function utf8Length(piece: string): number {
  if (piece.length > 2) return piece.length; // an ASCII escape such as \u0000
  if (piece.length === 2) return 4; // a surrogate pair
  const unit = piece.charCodeAt(0);
  return unit < 0x80 ? 1 : unit < 0x800 ? 2 : 3;
}
