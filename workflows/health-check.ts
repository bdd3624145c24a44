import { proxyActivities } from '@temporalio/workflow';
import type { Activities, DependencyReport } from '../src/worker/activities';

const { checkDependencies } = proxyActivities<Activities>({
  startToCloseTimeout: '30 seconds',
  retry: { maximumAttempts: 3 },
});

/** `healthCheck`: input `{}`. Runs one activity on the worker; says what the worker can reach. */
export async function healthCheck(_input: Record<string, never> = {}): Promise<DependencyReport & { checkedBy: string }> {
  const report = await checkDependencies();
  return { ...report, checkedBy: 'hunt-batch worker' };
}
