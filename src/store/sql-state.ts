/**
 * Postgres error codes (SQLSTATE, Appendix A of its manual) that the code branches on, by
 * name: a bare '57014' in a condition says nothing to its reader, and one module keeps the
 * codes from drifting apart between the hot path, the batch plane and the read API.
 */
export const SqlState = {
  /** A statement cancelled by statement_timeout (or by pg_cancel_backend). */
  queryCanceled: '57014',
  /** A session ended by transaction_timeout (Postgres 17 and later): its transaction outlasted it. */
  transactionTimeout: '25P04',
  /** A row a unique index already holds. */
  uniqueViolation: '23505',
  /** A lock not granted within lock_timeout, or at once under NOWAIT. */
  lockNotAvailable: '55P03',
  /** One of two (or more) sessions waiting on each other, chosen by Postgres to fail after deadlock_timeout. */
  deadlockDetected: '40P01',
  /** A table named by a statement does not exist. */
  undefinedTable: '42P01',
  /** DROP refused because other objects (a view, say) depend on the one dropped. */
  dependentObjectsStillExist: '2BP01',
  /** A limit the configuration sets, reached: temp_file_limit, by a sort or hash that spilled past it. */
  configurationLimitExceeded: '53400',
  /** max_connections, or the role's CONNECTION LIMIT, reached. */
  tooManyConnections: '53300',
  /** The server is shutting down, by an administrator or a crash of another backend. */
  adminShutdown: '57P01',
  crashShutdown: '57P02',
  /** The server is starting up or shutting down and takes no connections. */
  cannotConnectNow: '57P03',
  /** The role lacks a privilege the statement needs (setval without UPDATE on the sequence, say). */
  insufficientPrivilege: '42501',
  /** The password, or the authentication method, refused. */
  invalidPassword: '28P01',
  invalidAuthorization: '28000',
  /** The database named in the connection does not exist. */
  invalidCatalogName: '3D000',
  /** A limit of Postgres itself: an index row or a value too large, or the NOTIFY queue full. */
  programLimitExceeded: '54000',
} as const;

/** The SQLSTATE of a pg DatabaseError, if `err` is one. */
export function sqlStateOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}
