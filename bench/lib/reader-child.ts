/**
 * The leaderboard readers as a process of their own (see leaderboard-readers.ts), so the
 * benchmark can run them at a lower CPU priority than the system under test: on a machine
 * where clients and server share two cores, the clients' own work would otherwise count
 * against the server. Arguments: url readers thinkMs. Stops on SIGTERM and prints its
 * statistics as one JSON line.
 */
import { startLeaderboardReaders } from './leaderboard-readers';

const [url, readers, thinkMs] = process.argv.slice(2);
if (!url || !readers || thinkMs === undefined) throw new Error('usage: reader-child.ts <url> <readers> <thinkMs>');
const running = startLeaderboardReaders({ url, readers: Number(readers), thinkMs: Number(thinkMs) });
process.once('SIGTERM', () => {
  void running.stop().then((stats) => {
    process.stdout.write(`${JSON.stringify(stats)}\n`);
    process.exit(0);
  });
});
