/**
 * `GET /hunts/{huntId}`: a live leaderboard page, plain HTML and a few lines of script with
 * no build step. The script follows the hunt's Server-Sent Events stream and redraws the
 * table on every message; EventSource reconnects by itself when the connection drops, and
 * the script follows the stream again when it was refused (EventSource then gives up).
 * The hunt id is checked by the router (ID_PATTERN), and is still escaped where it is used.
 * The style and script are the same for every hunt, so the Content-Security-Policy can
 * allow exactly them by hash and nothing else: no other script, no other origin.
 */
import { createHash } from 'node:crypto';

const STYLE = `
  body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; }
  table { border-collapse: collapse; min-width: 28rem; }
  th, td { padding: .35rem .8rem; border-bottom: 1px solid #ddd; text-align: left; }
  td.n { text-align: right; font-variant-numeric: tabular-nums; }
  .inactive { color: #999; }
  #status { color: #777; font-size: .9rem; margin-bottom: 1rem; }
`;

const SCRIPT = `
  const rows = document.getElementById('rows');
  const status = document.getElementById('status');
  const cell = (text, cls) => { const td = document.createElement('td'); td.textContent = text; if (cls) td.className = cls; return td; };
  // Empty segments go: the server serves //hunts/h too, and '//hunts/h/...' would name a host.
  const url = location.pathname.replace(/\\/+/g, '/').replace(/\\/$/, '') + '/leaderboard/stream?limit=50';
  let wait = 1000;
  const follow = () => {
    const stream = new EventSource(url);
    stream.addEventListener('leaderboard', (event) => {
      wait = 1000;
      show(JSON.parse(event.data));
    });
    stream.onerror = () => {
      status.textContent = 'reconnecting…';
      // EventSource reconnects by itself after a dropped connection (and after this server's
      // refusal at the streams' cap, which ends a 200), not after another status (a proxy's
      // 5xx in a deploy): it closes for good. Followed again, later each time.
      if (stream.readyState !== EventSource.CLOSED) return;
      setTimeout(follow, Math.min(30000, wait * (1 + Math.random())));
      wait = Math.min(wait * 2, 30000);
    };
  };
  const show = (board) => {
    rows.replaceChildren(...board.entries.map((e) => {
      const tr = document.createElement('tr');
      tr.dataset.player = e.playerId;
      if (!e.active) tr.className = 'inactive';
      tr.append(cell(e.rank, 'n'), cell(e.displayName || e.playerId), cell(e.score, 'n score'), cell(e.cluesFound, 'n'), cell(e.treasuresClaimed, 'n'));
      return tr;
    }));
    status.textContent = board.entries.length === 0 ? 'no players yet' : 'live, as of ' + (board.asOf || '-');
  };
  follow();
`;

const sha256 = (text: string) => `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`;

export const LIVE_PAGE_HEADERS: Record<string, string> = {
  'content-security-policy': `default-src 'none'; style-src ${sha256(STYLE)}; script-src ${sha256(SCRIPT)}; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-cache',
};

export function livePage(huntId: string): string {
  const id = escapeHtml(huntId);
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Leaderboard: ${id}</title>
<style>${STYLE}</style>
</head>
<body>
<h1>Leaderboard: ${id}</h1>
<div id="status">connecting…</div>
<table>
  <thead><tr><th>#</th><th>player</th><th>score</th><th>clues</th><th>treasures</th></tr></thead>
  <tbody id="rows"></tbody>
</table>
<script>${SCRIPT}</script>
</body>
</html>
`;
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
