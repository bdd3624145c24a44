/**
 * A bad input value as JSON, cut short for a failure message: a message that repeated a
 * megabyte of input (and the stack trace again) passed Temporal's 2 MB limit on a failure,
 * and the server terminated the run with a message that said nothing of what to fix. Loaded
 * by workflow code: deterministic, no I/O.
 */

/** Longest a bad value is shown in a message. */
const SHOWN_CHARS = 200;

export function shown(value: unknown): string {
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    // Nested deeper than the stack (JSON.parse takes what JSON.stringify cannot give back):
    // thrown here, the error failed the job's workflow task on every retry, for ever.
    return '(a value nested too deeply to show)';
  }
  return text.length <= SHOWN_CHARS ? text : `${text.slice(0, SHOWN_CHARS)}… (${text.length} characters)`;
}
