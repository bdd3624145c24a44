/** What every service of the embedded stack offers to `hunt stack up|down|status|logs`. */

export interface ServiceStatus {
  name: string;
  state: 'up' | 'down';
  /** `embedded`: started by `hunt stack up`; `external`: pointed at by configuration. */
  mode: 'embedded' | 'external';
  address: string;
  version?: string;
  pid?: number;
  /** Extra addresses or hints, e.g. the Temporal Web UI URL. */
  details?: Record<string, string>;
  error?: string;
}

export interface StackService {
  readonly name: string;
  /** Provisions (download/build/init) if needed, starts if not running, waits until healthy. */
  up(): Promise<ServiceStatus>;
  /** Stops the process `up` started; external services are left alone. */
  down(): Promise<ServiceStatus>;
  status(): Promise<ServiceStatus>;
  /** The log file of the embedded process, if there is one. */
  readonly logFile?: string;
}

/** A tool the stack needs is missing; the message says how to install it or what to set instead. */
export class MissingToolError extends Error {
  constructor(tool: string, install: string, alternative: string) {
    super(`${tool} not found. Install it (${install}), or ${alternative}.`);
    this.name = 'MissingToolError';
  }
}
