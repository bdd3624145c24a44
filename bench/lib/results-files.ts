/**
 * Writes one benchmark run's record: `<name>-<time>.json` (every figure), `<name>-<time>.md`
 * (the table) and `<name>-latest.md`, under bench/results/.
 */
import fs from 'node:fs';
import path from 'node:path';

export interface ResultFiles {
  json: string;
  markdown: string;
  latest: string;
}

/** The files a run started at `startedAt` (ISO) writes; the markdown links the JSON by name. */
export function resultFilesOf(dir: string, name: string, startedAt: string): ResultFiles {
  const stamp = startedAt.replace(/[:.]/g, '-');
  return {
    json: path.join(dir, `${name}-${stamp}.json`),
    markdown: path.join(dir, `${name}-${stamp}.md`),
    latest: path.join(dir, `${name}-latest.md`),
  };
}

export function writeResultFiles(files: ResultFiles, record: unknown, markdown: string): void {
  fs.mkdirSync(path.dirname(files.json), { recursive: true });
  fs.writeFileSync(files.json, JSON.stringify(record, null, 2) + '\n');
  fs.writeFileSync(files.markdown, markdown);
  fs.writeFileSync(files.latest, markdown);
}
