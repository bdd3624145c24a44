/**
 * Whether a namespace has the search attributes every job sets (search-attributes.ts). A job
 * in a namespace without them fails each workflow task at its first upsert, and the server
 * retries the task without end: the job stays "Running", doing nothing.
 */
import type { OperatorService } from '@temporalio/client';
import { searchAttributeFlags } from './search-attributes';

/** The names of the project's search attributes that `namespace` lacks. */
export async function missingSearchAttributes(operatorService: OperatorService, namespace: string): Promise<string[]> {
  const { customAttributes } = await operatorService.listSearchAttributes({ namespace });
  return searchAttributeFlags.map((flag) => flag.split('=')[0] as string).filter((name) => !(customAttributes && name in customAttributes));
}

/** What an operator runs to add them (Keyword, as searchAttributeFlags says). */
export function registerCommand(namespace: string, missing: readonly string[]): string {
  return missing.map((name) => `temporal operator search-attribute create --namespace ${namespace} --name ${name} --type Keyword`).join('; ');
}
