/** What /readyz says of a Postgres it cannot use: the kind of failure, without the server's text. */
import { describe, expect, it } from 'vitest';
import { pingFailure } from '../../src/store/pool';

const failure = (code: string | undefined, message = 'too many connections for role "secret_role"') => Object.assign(new Error(message), { code });

describe('pingFailure', () => {
  it('tells running out of connections from an outage', () => {
    expect(pingFailure(failure('53300'))).toBe("out of connections (53300: max_connections or the role's CONNECTION LIMIT reached)");
    expect(pingFailure(failure('ECONNREFUSED', 'connect ECONNREFUSED 127.0.0.1:5432'))).toBe('unreachable');
    expect(pingFailure(new Error('no answer within 2000 ms'))).toBe('unreachable');
  });

  it('names refused authentication, a database that does not exist, and a server starting, without the server text', () => {
    expect(pingFailure(failure('28P01'))).toBe('authentication refused (28P01)');
    expect(pingFailure(failure('3D000'))).toBe('the database does not exist (3D000)');
    expect(pingFailure(failure('57P03'))).toBe('starting up or shutting down (57P03)');
    expect(pingFailure(failure('53300'))).not.toContain('secret_role');
  });
});
