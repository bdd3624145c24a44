/**
 * A request path as the read API's router sees it, shared by the router (server.ts) and the
 * route label of its metrics (api-metrics.ts), so both take the same path to the same route.
 */

/** The path's segments, empty ones dropped, each percent-decoded; undefined when one does not decode (a broken %-escape, invalid UTF-8). */
export function pathSegments(pathname: string): string[] | undefined {
  try {
    return pathname
      .split('/')
      .filter(Boolean)
      .map((segment) => decodeURIComponent(segment));
  } catch {
    return undefined;
  }
}
