/**
 * Reads the ingest child's Prometheus text: histograms (buckets, sum, count) and plain
 * samples, plus quantiles interpolated within buckets the way Prometheus's
 * histogram_quantile does, so the figure is exactly as coarse as the buckets.
 */

export interface Histogram {
  /** Cumulative counts per upper bound, ascending, +Inf last. */
  buckets: { le: number; count: number }[];
  sum: number;
  count: number;
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$/;

function samples(text: string, name: string): { labels: string; value: number }[] {
  const out: { labels: string; value: number }[] = [];
  for (const line of text.split('\n')) {
    const m = SAMPLE.exec(line.trim());
    if (m && m[1] === name) out.push({ labels: m[2] ?? '', value: Number(m[3]) });
  }
  return out;
}

/** Sum of a counter or gauge across its label sets. */
export function sampleValue(text: string, name: string): number {
  return samples(text, name).reduce((sum, s) => sum + s.value, 0);
}

export function parseHistogram(text: string, name: string): Histogram {
  const buckets = samples(text, `${name}_bucket`).map((s) => {
    const le = /le="([^"]+)"/.exec(s.labels)?.[1] ?? '+Inf';
    return { le: le === '+Inf' ? Infinity : Number(le), count: s.value };
  });
  buckets.sort((a, b) => a.le - b.le);
  return { buckets, sum: sampleValue(text, `${name}_sum`), count: sampleValue(text, `${name}_count`) };
}

/** The observations made between two scrapes of the same histogram. */
export function histogramDelta(after: Histogram, before: Histogram): Histogram {
  return {
    buckets: after.buckets.map((b, i) => ({ le: b.le, count: b.count - (before.buckets[i]?.count ?? 0) })),
    sum: after.sum - before.sum,
    count: after.count - before.count,
  };
}

/** Histograms of the same metric from several processes (same buckets), as one. */
export function mergeHistograms(histograms: Histogram[]): Histogram {
  const [first, ...rest] = histograms;
  if (!first) return { buckets: [], sum: 0, count: 0 };
  return rest.reduce(
    (a, h) => ({ buckets: a.buckets.map((b, i) => ({ le: b.le, count: b.count + (h.buckets[i]?.count ?? 0) })), sum: a.sum + h.sum, count: a.count + h.count }),
    first,
  );
}

export interface Quantile {
  /** Linear interpolation within the bucket (histogram_quantile). */
  value: number;
  /** The bucket the quantile falls in: the true value lies somewhere in (lower, upper]. */
  lower: number;
  upper: number;
}

export function histogramQuantile(h: Histogram, q: number): Quantile | undefined {
  if (h.count === 0) return undefined;
  const rank = q * h.count;
  let lowerBound = 0;
  let lowerCount = 0;
  for (const b of h.buckets) {
    if (b.count >= rank) {
      if (b.le === Infinity) return { value: lowerBound, lower: lowerBound, upper: Infinity };
      const inBucket = b.count - lowerCount;
      const value = inBucket === 0 ? b.le : lowerBound + ((b.le - lowerBound) * (rank - lowerCount)) / inBucket;
      return { value, lower: lowerBound, upper: b.le };
    }
    lowerBound = b.le;
    lowerCount = b.count;
  }
  return undefined;
}

/** Fraction of observations at or below `le` (which should be a bucket bound to be exact). */
export function fractionAtOrBelow(h: Histogram, le: number): number | undefined {
  const bucket = h.buckets.find((b) => b.le === le);
  return bucket && h.count > 0 ? bucket.count / h.count : undefined;
}
