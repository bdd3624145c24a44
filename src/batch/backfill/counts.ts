/** Import counters: pure, so workflows can add them up too. */
export interface ImportCounts {
  records: number;
  inserted: number;
  duplicates: number;
  rejected: number;
  rejectedByReason: Record<string, number>;
  /** Accepted but skipped because they belong to another hunt than the job's huntId filter. */
  filteredOut: number;
  /**
   * Kafka records read but stamped before the job's `from` or at or after its `to`, skipped.
   * Absent from counts that jobs started before it existed heartbeated.
   */
  outsideRange?: number;
}

export function emptyCounts(): ImportCounts {
  return { records: 0, inserted: 0, duplicates: 0, rejected: 0, rejectedByReason: {}, filteredOut: 0, outsideRange: 0 };
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
  };
}
