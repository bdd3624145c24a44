/**
 * The disk's own latency during a measurement window, the floor under freshness that no
 * change in the consumer moves: every micro-batch commit waits for Postgres to write and
 * fdatasync its WAL, and while the kernel writes back a burst of dirty page cache on the same
 * disk (by default everything dirty for 30 s at once: Kafka's log, Postgres's new relation
 * pages), each such flush waits behind the burst, and so does every event committed meanwhile.
 *
 * The probe does what a commit does, small: an 8 KiB write and fdatasync every 50 ms, in a
 * file beside the stack's data (so on Postgres's filesystem when the stack is embedded), and
 * samples the kernel's dirty and writeback totals (/proc/meminfo, Linux) to show the bursts.
 * Its own load is 160 KiB/s, well under what the window writes.
 */
import fs from 'node:fs';
import path from 'node:path';
import { kbField, round } from './procfs';

const PROBE_BYTES = 8192;
/** A flush this slow holds every commit waiting on it well past the freshness target. */
const SLOW_FLUSH_MS = 50;

export interface DiskProbeResult {
  flushes: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** Flushes slower than SLOW_FLUSH_MS. */
  slowFlushes: number;
  slowFlushMs: number;
  /** Why probing stopped early, if it did (the figures cover the flushes before). */
  failure?: string;
  /** Peaks of the kernel's page cache waiting to be written and being written, in MiB (undefined off Linux). */
  dirtyPeakMb: number | undefined;
  writebackPeakMb: number | undefined;
}

export class DiskProbe {
  private readonly latenciesMs: number[] = [];
  private dirtyPeakKb: number | undefined;
  private writebackPeakKb: number | undefined;
  private stopping = false;
  private failure: string | undefined;
  private readonly loop: Promise<void>;
  /** Sampled on its own timer: during a burst the flush loop itself is held up. */
  private readonly pageCacheTimer: NodeJS.Timeout;

  private constructor(
    private readonly file: string,
    private readonly handle: fs.promises.FileHandle,
    private readonly intervalMs: number,
  ) {
    this.loop = this.run();
    this.pageCacheTimer = setInterval(() => this.samplePageCache(), intervalMs);
  }

  /** Starts probing in `directory` (created if missing); the probe's file is removed on stop. */
  static async start(directory: string, intervalMs = 50): Promise<DiskProbe> {
    fs.mkdirSync(directory, { recursive: true });
    const file = path.join(directory, `disk-probe-${process.pid}.bin`);
    return new DiskProbe(file, await fs.promises.open(file, 'w'), intervalMs);
  }

  /** Stops probing (again: the same result) and removes the probe's file. */
  async stop(): Promise<DiskProbeResult> {
    if (!this.stopping) {
      this.stopping = true;
      clearInterval(this.pageCacheTimer);
      await this.loop.finally(() => this.handle.close());
      fs.rmSync(this.file, { force: true });
    }
    const sorted = [...this.latenciesMs].sort((a, b) => a - b);
    const at = (q: number) => round(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN, 2);
    const mb = (kb: number | undefined) => (kb === undefined ? undefined : round(kb / 1024, 1));
    return {
      flushes: sorted.length,
      p50Ms: at(0.5),
      p99Ms: at(0.99),
      maxMs: round(sorted[sorted.length - 1] ?? NaN, 1),
      slowFlushes: sorted.filter((ms) => ms > SLOW_FLUSH_MS).length,
      slowFlushMs: SLOW_FLUSH_MS,
      ...(this.failure ? { failure: this.failure } : {}),
      dirtyPeakMb: mb(this.dirtyPeakKb),
      writebackPeakMb: mb(this.writebackPeakKb),
    };
  }

  private async run(): Promise<void> {
    try {
      await this.probe();
    } catch (err) {
      this.failure = err instanceof Error ? err.message : String(err);
    }
  }

  private async probe(): Promise<void> {
    const block = Buffer.alloc(PROBE_BYTES, 0x5a);
    let offset = 0;
    while (!this.stopping) {
      const started = performance.now();
      // Asynchronous: the flush waits in libuv's pool, never on the event loop that produces the traffic.
      await this.handle.write(block, 0, block.length, offset);
      await this.handle.datasync();
      this.latenciesMs.push(performance.now() - started);
      // Rewriting the first 1 MiB, as WAL rewrites its current page: the file never grows.
      offset = (offset + PROBE_BYTES) % (1 << 20);
      await new Promise((resolve) => setTimeout(resolve, this.intervalMs));
    }
  }

  private samplePageCache(): void {
    let meminfo: string;
    try {
      meminfo = fs.readFileSync('/proc/meminfo', 'utf8');
    } catch {
      return;
    }
    const dirty = kbField(meminfo, 'Dirty');
    const writeback = kbField(meminfo, 'Writeback');
    if (Number.isFinite(dirty)) this.dirtyPeakKb = Math.max(this.dirtyPeakKb ?? 0, dirty);
    if (Number.isFinite(writeback)) this.writebackPeakKb = Math.max(this.writebackPeakKb ?? 0, writeback);
  }
}
