/** Import counters: pure, so workflows can add them up too. */
export interface ImportCounts {
  records: number;
  inserted: number;
  duplicates: number;
  rejected: number;
  rejectedByReason: Record<string, number>;
  /** Skipped because they belong to another hunt than the job's huntId filter: events, and rejects whose hunt can be read. */
  filteredOut: number;
  /**
   * Kafka records read but stamped before the job's `from` or at or after its `to`, skipped.
   * Absent from counts that jobs started before it existed heartbeated.
   */
  outsideRange?: number;
  /**
   * Kafka records of the range that the log no longer held when the job came to them
   * (retention or delete-records moved the partition's start past the job's cursor): lost to
   * the job, passed. Absent from counts that jobs started before it existed heartbeated.
   */
  deletedBeforeRead?: number;
}

export function emptyCounts(): ImportCounts {
  return { records: 0, inserted: 0, duplicates: 0, rejected: 0, rejectedByReason: {}, filteredOut: 0, outsideRange: 0, deletedBeforeRead: 0 };
}

export function addCounts(a: ImportCounts, b: ImportCounts): ImportCounts {
  const rejectedByReason = { ...a.rejectedByReason };
  for (const [reason, n] of Object.entries(b.rejectedByReason)) rejectedByReason[reason] = (rejectedByReason[reason] ?? 0) + n;
  return {
    records: a.records + b.records,
    inserted: a.inserted + b.inserted,
    duplicates: a.duplicates + b.duplicates,
    rejected: a.rejected + b.rejected,
    rejectedByReason,
    filteredOut: a.filteredOut + b.filteredOut,
    outsideRange: (a.outsideRange ?? 0) + (b.outsideRange ?? 0),
    deletedBeforeRead: (a.deletedBeforeRead ?? 0) + (b.deletedBeforeRead ?? 0),
  };
}
