// Lint: typescript-eslint's recommended rules, plus three project rules:
// workflows stay deterministic (no Node built-ins, no I/O libraries), src/constants.ts
// (the values workflows share with the services) imports nothing, and only
// src/config.ts reads the environment.
import js from '@eslint/js';
import { builtinModules } from 'node:module';
import tseslint from 'typescript-eslint';

const nodeBuiltins = builtinModules.flatMap((m) => [m, `node:${m}`]);
const ioLibraries = ['pg', 'kafkajs', 'pino', 'prom-client', '@temporalio/client', '@temporalio/worker', '@temporalio/activity'];

export default tseslint.config(
  { ignores: ['node_modules/', '.hunt/', 'dist/', 'bench/results/', '.scratch/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { process: 'readonly', console: 'readonly', Buffer: 'readonly' } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-restricted-properties': [
        'error',
        { object: 'process', property: 'env', message: 'Read configuration through src/config.ts (loadConfig).' },
      ],
    },
  },
  {
    // Passing the environment on to child processes and test servers is not reading config.
    files: ['src/config.ts', 'infra/**', 'test/**', 'bench/**'],
    rules: { 'no-restricted-properties': 'off' },
  },
  {
    // Workflows import it freely (the patterns below leave it out), so it must stay free of
    // anything a workflow may not reach.
    files: ['src/constants.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [{ group: ['*'], message: 'src/constants.ts is shared with workflow code: keep it free of imports.' }] }],
    },
  },
  {
    files: ['workflows/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: [...nodeBuiltins, ...ioLibraries].map((name) => ({
            name,
            message: 'Workflows must be deterministic: no Node built-ins or I/O. Call an activity instead.',
          })),
          patterns: [
            {
              group: ['../src/store/**', '../src/ingest/**', '../src/pipeline/**', '../src/worker/**', '../src/correctness/**', '../src/batch/*-job', '../src/batch/backfill/import-*', '../src/batch/backfill/*-source'],
              message: 'Workflows import only types from activities and the store.',
              allowTypeImports: true,
            },
          ],
        },
      ],
    },
  },
);
