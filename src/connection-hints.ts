/**
 * What to fix, for the errors a misconfigured connection gives: a refused password or key,
 * an untrusted or mismatched certificate, TLS on one side only. Each function answers with
 * a sentence naming the variables to check (never their values), or undefined for errors
 * that are not about settings, outages included. Plain text matching, no driver imports,
 * so the `hunt` command can use it for any error without loading the drivers.
 */
import type { KafkaSecurity } from './config-security';

/** An error whose message already says which settings to fix: nothing more to add. */
export class ConnectionSettingsError extends Error {
  override readonly name = 'ConnectionSettingsError';
}

/** The error's messages down its chain of causes (kafkajs wraps, pg and gRPC do not). */
function chainText(err: unknown): string {
  const parts: string[] = [];
  for (let e: unknown = err; e instanceof Error && parts.length < 5; e = (e as { cause?: unknown }).cause ?? (e as { originalError?: unknown }).originalError) {
    parts.push(`${e.name} ${(e as NodeJS.ErrnoException).code ?? ''} ${e.message}`);
  }
  return parts.join(' | ');
}

/**
 * What to fix, for the errors a misconfigured connection gives: refused credentials, an
 * untrusted or mismatched certificate, a TLS or SASL mismatch with the listener. Undefined
 * for other errors. Names variables, never their values.
 */
export function explainKafkaError(err: unknown, security: KafkaSecurity = {}): string | undefined {
  const text = chainText(err);
  if (/SASLAuthenticationError|authentication failed|Authentication failed/i.test(text)) {
    const who = security.sasl ? ` (mechanism ${security.sasl.mechanism}, user ${security.sasl.username})` : '';
    return `Kafka refused the SASL credentials${who}: check KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD(_FILE) and KAFKA_SASL_MECHANISM`;
  }
  if (/not valid given the current SASL state|ILLEGAL_SASL_STATE/i.test(text)) {
    return 'the Kafka listener at KAFKA_BROKERS does not take SASL: point it at a SASL_SSL (or SASL_PLAINTEXT) listener, or unset KAFKA_SASL_MECHANISM';
  }
  if (/UNSUPPORTED_SASL_MECHANISM|not enabled|Unsupported SASL mechanism/i.test(text)) {
    return 'the Kafka listener does not offer this SASL mechanism: set KAFKA_SASL_MECHANISM to one it enables';
  }
  if (/SELF_SIGNED|UNABLE_TO_VERIFY|unable to get local issuer|self[- ]signed|CERT_UNTRUSTED|UNABLE_TO_GET_ISSUER/i.test(text)) {
    return "Kafka's TLS certificate is not signed by a trusted CA: set KAFKA_TLS_CA_FILE to the CA that signs the brokers' certificates";
  }
  if (/ERR_TLS_CERT_ALTNAME_INVALID|Hostname\/IP does not match/i.test(text)) {
    return "Kafka's TLS certificate does not name the broker address: set KAFKA_TLS_SERVER_NAME to a name the certificate carries";
  }
  if (/certificate required|alert number 116|bad certificate|alert number 42/i.test(text)) {
    return 'the Kafka listener wants a client certificate it accepts: set KAFKA_TLS_CERT_FILE and KAFKA_TLS_KEY_FILE';
  }
  if (security.tls && /wrong version number|ECONNRESET|Connection error|closed/i.test(text) && /SSL|TLS|EPROTO|ECONNRESET/i.test(text)) {
    return KAFKA_TLS_HANDSHAKE_HINT;
  }
  return undefined;
}

/**
 * The one Kafka hint an outage can give too: a connection reset during the handshake comes
 * from a plain-text listener and from a load balancer with no broker behind it alike. Start-up
 * waits on it, saying the hint; the other hints stop it.
 */
export const KAFKA_TLS_HANDSHAKE_HINT = 'the TLS handshake with Kafka failed: check that the listener at KAFKA_BROKERS speaks TLS (SSL or SASL_SSL)';

/**
 * What to say while waiting on a Kafka that closes each connection at once (the outage kind):
 * a TLS or SASL listener reached without them does that too, and would be waited on for ever.
 */
export function kafkaClosedConnectionHint(err: unknown, security: KafkaSecurity = {}): string | undefined {
  if (!/Closed connection|ECONNRESET|socket hang up/i.test(chainText(err))) return undefined;
  const missing = [security.tls ? undefined : 'KAFKA_TLS', security.sasl ? undefined : 'KAFKA_SASL_MECHANISM'].filter(Boolean);
  return missing.length === 0
    ? undefined
    : `the broker closed the connection: if its listener wants TLS or SASL, set ${missing.join(' or ')}`;
}

/**
 * What to fix, for the errors a misconfigured connection gives (refused password, TLS
 * required or unavailable, an untrusted or mismatched certificate); undefined for others,
 * outages included. Names variables, never their values.
 */
export function explainPostgresError(err: unknown): string | undefined {
  const e = err as { code?: string } | undefined;
  const text = chainText(err);
  if (e?.code === '28P01' || /password authentication failed/i.test(text)) {
    return 'Postgres refused the password: check DATABASE_PASSWORD(_FILE) or the password in DATABASE_URL(_FILE)';
  }
  if (/no pg_hba\.conf entry .*no encryption/i.test(text)) {
    return 'Postgres accepts only TLS connections from here: set DATABASE_TLS_MODE (verify-full, verify-ca or require)';
  }
  if (/requires a valid client certificate/i.test(text)) {
    return 'Postgres wants a client certificate: set DATABASE_TLS_CERT_FILE and DATABASE_TLS_KEY_FILE';
  }
  if (e?.code === '28000' || /no pg_hba\.conf entry/i.test(text)) {
    return 'Postgres has no access rule (pg_hba.conf) for this user, database and address, or wants a client certificate: check DATABASE_URL and DATABASE_TLS_CERT_FILE';
  }
  if (/does not support SSL/i.test(text)) {
    return 'Postgres does not offer TLS: set DATABASE_TLS_MODE=disable, or turn on ssl on the server';
  }
  if (/self[- ]signed|unable to verify|unable to get local issuer|UNABLE_TO_GET_ISSUER|CERT_UNTRUSTED/i.test(text)) {
    return "Postgres's TLS certificate is not signed by a trusted CA: set DATABASE_TLS_CA_FILE to the CA that signs it";
  }
  if (/ERR_TLS_CERT_ALTNAME_INVALID|Hostname\/IP does not match/i.test(text)) {
    return "Postgres's TLS certificate does not name the host in DATABASE_URL: connect by a name it carries, or use DATABASE_TLS_MODE=verify-ca";
  }
  if (/certificate required|alert number 116|certificate verify failed|tlsv1 alert unknown ca/i.test(text)) {
    return 'Postgres did not accept the client certificate: check DATABASE_TLS_CERT_FILE and DATABASE_TLS_KEY_FILE';
  }
  return undefined;
}

/**
 * What to fix, for the errors a misconfigured connection gives (untrusted certificate, no
 * or refused client certificate, a plain-text server, a refused API key); undefined for
 * others. Names variables, never their values.
 */
export function explainTemporalError(err: unknown): string | undefined {
  const text = chainText(err);
  if (/UnknownIssuer|unknown ?issuer|self[- ]signed|unable to verify|CERTIFICATE_VERIFY_FAILED/i.test(text)) {
    return "Temporal's TLS certificate is not signed by a trusted CA: set TEMPORAL_TLS_CA_FILE to the CA that signs it";
  }
  if (/NotValidForName|not valid for name|Hostname\/IP does not match|ALTNAME/i.test(text)) {
    return "Temporal's TLS certificate does not name the address: set TEMPORAL_TLS_SERVER_NAME to a name it carries";
  }
  if (/unknown ?ca|UnknownCA|bad ?certificate|BadCertificate|certificate unknown/i.test(text)) {
    return 'the Temporal endpoint refused the client certificate: set TEMPORAL_TLS_CERT_FILE and TEMPORAL_TLS_KEY_FILE to a pair signed by the CA it trusts';
  }
  if (/certificate required|CertificateRequired|alert number 116|handshake failure/i.test(text)) {
    return 'the Temporal endpoint wants a client certificate: set TEMPORAL_TLS_CERT_FILE and TEMPORAL_TLS_KEY_FILE';
  }
  if (/Unauthenticated|PermissionDenied|UNAUTHENTICATED|PERMISSION_DENIED|\b401\b|\b403\b/.test(text)) {
    return 'Temporal refused the credentials: check TEMPORAL_API_KEY(_FILE) or the client certificate, and TEMPORAL_NAMESPACE';
  }
  if (/InvalidContentType|wrong version number|corrupt message|Frame size|http2 error|tls handshake eof/i.test(text)) {
    return 'the TLS settings do not match the Temporal endpoint: set TEMPORAL_TLS=true for a TLS endpoint, or unset the TEMPORAL_TLS_* settings for a plain one';
  }
  return undefined;
}

/**
 * A hint for an error of any of the three, told apart by where it came from: kafkajs names
 * its errors KafkaJS..., gRPC and the worker's core mention their transport; the rest
 * (a bare TLS error included) comes from Postgres, the only other service a command uses.
 */
export function explainConnectionError(err: unknown): string | undefined {
  const text = chainText(err);
  if (/KafkaJS/.test(text)) return explainKafkaError(err);
  if (/Temporal|tonic|GetSystemInfo|grpc/i.test(text)) return explainTemporalError(err);
  return explainPostgresError(err);
}
