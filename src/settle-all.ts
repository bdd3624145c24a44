/**
 * Promise.all that waits for every promise before it fails: the first rejection, in the given
 * order, is thrown once all have settled; otherwise the values. A caller that cleans up or
 * retries after a failure must not race work still in flight (a lane's commit, a pipelined
 * statement).
 */
export async function settleAll<T>(promises: readonly Promise<T>[]): Promise<T[]> {
  const settled = await Promise.allSettled(promises);
  const failure = settled.find((result): result is PromiseRejectedResult => result.status === 'rejected');
  if (failure) throw failure.reason;
  return settled.map((result) => (result as PromiseFulfilledResult<T>).value);
}
