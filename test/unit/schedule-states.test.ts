/**
 * `hunt schedules list` says a schedule is not applied only when the server has none of that
 * id; a describe the server refused or never answered is `unknown`, with its reason.
 */
import { ScheduleNotFoundError, type Client } from '@temporalio/client';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config';
import { scheduleSpecs, scheduleStates } from '../../src/temporal/schedules';

describe('scheduleStates', () => {
  it('reads active, paused and not applied from the server, and anything else as unknown', async () => {
    const config = loadConfig({});
    const [first, second, third] = scheduleSpecs(config).map((s) => s.scheduleId);
    const answers: Record<string, () => Promise<unknown>> = {
      [first!]: async () => ({ state: { paused: false } }),
      [second!]: async () => {
        throw new ScheduleNotFoundError('schedule not found', second!);
      },
      [third!]: async () => {
        throw Object.assign(new Error('7 PERMISSION_DENIED: Request unauthorized.'), { code: 7 });
      },
    };
    const client = { schedule: { getHandle: (id: string) => ({ describe: answers[id] }) } } as unknown as Pick<Client, 'schedule'>;
    const states = await scheduleStates(client, config);
    expect(states.map(({ spec, state, known }) => [spec.scheduleId, state, known])).toEqual([
      [first, 'active', true],
      [second, 'not applied', true],
      [third, 'unknown (7 PERMISSION_DENIED: Request unauthorized.)', false],
    ]);
    const allPaused = { schedule: { getHandle: () => ({ describe: async () => ({ state: { paused: true } }) }) } } as unknown as Pick<Client, 'schedule'>;
    expect((await scheduleStates(allPaused, config)).map(({ state, known }) => [state, known])).toEqual(scheduleSpecs(config).map(() => ['paused', true]));
  });
});
