/** `hunt schemas`: writes the events' JSON Schema files for clients in other languages. */
import path from 'node:path';
import type { Command } from 'commander';
import { projectRoot } from '../config';
import { writeJsonSchemas } from '../events/json-schema';

export function registerSchemasCommand(program: Command): void {
  program
    .command('schemas')
    .description('write JSON Schema (draft 2020-12) files of every event type')
    .option('--out <dir>', 'output folder', path.join(projectRoot, 'schemas'))
    .action(async (opts: { out: string }) => {
      const files = await writeJsonSchemas(opts.out);
      console.log(files.map((f) => path.relative(process.cwd(), f)).join('\n'));
    });
}
