/**
 * Where a V8 CPU profile (`node --cpu-prof`) spends its time: self time per function and per
 * package, and inclusive time of the project's own functions (so "classifyRecord, with
 * everything it calls" is one figure). Also a command:
 *   npx tsx bench/profile-summary.ts <file.cpuprofile> [top]
 */
import fs from 'node:fs';
import { pathToFileURL } from 'node:url';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  /** Microseconds on the monotonic clock (process.hrtime on Linux). */
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** Only samples taken within [fromUs, toUs] of the monotonic clock count (e.g. the drain, not start-up). */
export interface SampleWindow {
  fromUs: number;
  toUs: number;
}

export interface TimeShare {
  name: string;
  ms: number;
  /** Percent of the busy (non-idle) time. */
  pct: number;
}

export interface ProfileSummary {
  totalMs: number;
  idleMs: number;
  byPackage: TimeShare[];
  topSelf: TimeShare[];
  /** The project's own functions (src/), time including what they call. */
  topInclusiveOwn: TimeShare[];
}

/** `src/ingest/consumer.ts`, `kafkajs`, `node:internal`, `(garbage collector)`... */
export function packageOf(url: string, functionName: string): string {
  if (!url) return functionName.startsWith('(') ? functionName : '(native)';
  const modules = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
  if (modules?.[1]) return modules[1];
  if (url.startsWith('node:')) return 'node:internal';
  const own = /\/((?:src|bench|bin)\/.*)$/.exec(url);
  return own?.[1] ?? url;
}

function keyOf(node: ProfileNode): string {
  const { functionName, url, lineNumber } = node.callFrame;
  const where = packageOf(url, functionName);
  if (!url) return where;
  // Lines of tsx-compiled sources do not match the .ts files; those of plain JS packages do.
  return `${functionName || '(anonymous)'} ${where}${url.includes('node_modules') ? `:${lineNumber + 1}` : ''}`;
}

export function summarizeProfile(profile: CpuProfile, top = 20, window?: SampleWindow): ProfileSummary {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

  const selfUs = new Map<number, number>();
  let at = profile.startTime;
  profile.samples.forEach((id, i) => {
    const delta = profile.timeDeltas[i] ?? 0;
    at += delta;
    if (window && (at < window.fromUs || at > window.toUs)) return;
    selfUs.set(id, (selfUs.get(id) ?? 0) + delta);
  });

  const self = new Map<string, number>();
  const packages = new Map<string, number>();
  const inclusive = new Map<string, number>();
  let totalUs = 0;
  let idleUs = 0;
  for (const [id, us] of selfUs) {
    const node = byId.get(id);
    if (!node) continue;
    totalUs += us;
    if (node.callFrame.functionName === '(idle)') {
      idleUs += us;
      continue;
    }
    add(self, keyOf(node), us);
    add(packages, packageOf(node.callFrame.url, node.callFrame.functionName), us);
    // Each own function on the stack once, however deep the recursion.
    const onStack = new Set<string>();
    for (let frameId: number | undefined = id; frameId !== undefined; frameId = parent.get(frameId)) {
      const frame = byId.get(frameId);
      const url = frame?.callFrame.url ?? '';
      if (frame && url.includes('/src/') && !url.includes('node_modules')) onStack.add(keyOf(frame));
    }
    for (const key of onStack) add(inclusive, key, us);
  }
  const busyUs = totalUs - idleUs;
  const shares = (m: Map<string, number>, n: number) =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([name, us]) => ({ name, ms: Math.round(us / 1000), pct: Math.round((1000 * us) / busyUs) / 10 }));
  return {
    totalMs: Math.round(totalUs / 1000),
    idleMs: Math.round(idleUs / 1000),
    byPackage: shares(packages, 15),
    topSelf: shares(self, top),
    topInclusiveOwn: shares(inclusive, top),
  };
}

function add(m: Map<string, number>, key: string, us: number): void {
  m.set(key, (m.get(key) ?? 0) + us);
}

export function summarizeProfileFile(file: string, top = 20, window?: SampleWindow): ProfileSummary {
  return summarizeProfile(JSON.parse(fs.readFileSync(file, 'utf8')) as CpuProfile, top, window);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const [file, top] = process.argv.slice(2);
  if (!file) {
    console.error('usage: tsx bench/profile-summary.ts <file.cpuprofile> [top]');
    process.exit(2);
  }
  const summary = summarizeProfileFile(file, Number(top ?? 25));
  console.log(`busy ${summary.totalMs - summary.idleMs} ms of ${summary.totalMs} ms sampled\n`);
  for (const [title, rows] of [
    ['self time by package', summary.byPackage],
    ['self time by function', summary.topSelf],
    ['inclusive time, own functions', summary.topInclusiveOwn],
  ] as const) {
    console.log(title);
    for (const r of rows) console.log(`  ${String(r.pct).padStart(5)}%  ${String(r.ms).padStart(7)} ms  ${r.name}`);
    console.log();
  }
}
