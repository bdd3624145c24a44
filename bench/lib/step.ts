/** A benchmark's progress line on stdout, stamped with the time of day (UTC). */
export const step = (message: string) => console.log(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}`);
