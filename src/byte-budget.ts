/**
 * Cutting a list into consecutive groups by a byte budget: the DLQ's sends (a broker refuses
 * a record batch over the topic's limit), quarantine's INSERTs (a parameter past about
 * 268 MB cannot be built) and dlqReplay's batches (the worker's memory) need it; so does
 * a window of live leaderboards, by entries rather than bytes.
 */

/**
 * Consecutive groups of `items`, in order, each within `maxBytes` by `sizeOf` (an item alone
 * may exceed it) and of at most `maxItems` items.
 */
export function groupsWithin<T>(items: readonly T[], maxBytes: number, sizeOf: (item: T) => number, maxItems = Infinity): T[][] {
  const groups: T[][] = [];
  let group: T[] = [];
  let bytes = 0;
  for (const item of items) {
    const size = sizeOf(item);
    if (group.length > 0 && (bytes + size > maxBytes || group.length >= maxItems)) {
      groups.push(group);
      group = [];
      bytes = 0;
    }
    group.push(item);
    bytes += size;
  }
  if (group.length > 0) groups.push(group);
  return groups;
}
