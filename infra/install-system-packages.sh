#!/usr/bin/env bash
# Installs, from Debian's packages, the system tools the project needs when they are missing:
# the Postgres server, a Java runtime and Maven (Kafka), Go (the Temporal CLI), and for the
# tests Chromium (the browser tests), promtool (from `prometheus`: the alert rules' tests),
# openssl (a throwaway CA for the TLS tests) and haproxy (TLS in front of the Temporal dev
# server, which has no TLS of its own). `npm start` and `npm test` run it first (prestart,
# pretest), so their README commands work on a fresh machine; CI runs it too.
#
#   install-system-packages.sh [start|test]   (default: test, which needs everything)
#
# For `start`, a service given from outside needs no local tool: with DATABASE_URL set, no
# Postgres server; with KAFKA_BROKERS, no Java or Maven; with TEMPORAL_ADDRESS (or a temporal
# CLI on PATH), no Go. `test` needs them all whatever is set: some tests start services of
# their own (a Postgres that requires TLS, a Kafka with SASL, the embedded stack's
# lifecycle). A Go older than 1.21 (Debian 12 has 1.19) gets a newer one from the Go module proxy
# (below). Needs root, or sudo, only when something is missing.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
purpose="${1:-test}"
missing=()
# Whether a service is given from outside (and needs no local tool): only for `start`.
given() { [ "$purpose" != test ] && [ -n "$1" ]; }
if ! given "${DATABASE_URL:-}${DATABASE_URL_FILE:-}"; then
  ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || missing+=(postgresql)
fi
if ! given "${KAFKA_BROKERS:-}"; then
  command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
  command -v mvn >/dev/null || missing+=(maven)
fi
builds_temporal_cli=false
if ! given "${TEMPORAL_ADDRESS:-}" && ! command -v temporal >/dev/null; then
  builds_temporal_cli=true
  command -v go >/dev/null || missing+=(golang-go)
  # Go fetches the CLI's modules over HTTPS and trusts only the system's CA bundle, which a
  # minimal Debian lacks (Node and Java bring their own).
  [ -s /etc/ssl/certs/ca-certificates.crt ] || missing+=(ca-certificates)
fi
if [ "$purpose" = test ]; then
  # Where Debian's package puts it, and where the browser tests look (test/browser).
  [ -x /usr/bin/chromium ] || missing+=(chromium)
  command -v promtool >/dev/null || missing+=(prometheus)
  command -v openssl >/dev/null || missing+=(openssl)
  command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || missing+=(haproxy)
fi
# Runs a command as root: directly, or through sudo.
as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null; then
    sudo "$@"
  else
    echo "needs root for: $*; run as root (or install sudo), or install these yourself: ${missing[*]:-a Go toolchain 1.21+}" >&2
    exit 1
  fi
}

# Runs a command up to 3 times, pausing longer after each failure.
with_retries() {
  local attempt
  for attempt in 1 2 3; do
    if "$@"; then return 0; fi
    [ "$attempt" -lt 3 ] || break
    echo "failed (try $attempt of 3), trying again: $*" >&2
    sleep $((attempt * 10))
  done
  echo "failed 3 times: $*" >&2
  return 1
}

# Debian 12's golang-go is Go 1.19: too old to build the Temporal CLI (1.23+), and too old to
# fetch a newer toolchain by itself (GOTOOLCHAIN arrived in 1.21). Such a Go downloads Go's own
# toolchain module from the module proxy, the way Go 1.21+ does, into $HUNT_GO_PREFIX/lib
# (default /usr/local), linked from $HUNT_GO_PREFIX/bin/go; from there GOTOOLCHAIN=auto fetches
# whatever newer Go the CLI's go.mod asks for.
GO_BOOTSTRAP_VERSION=1.23.12
ensure_go_with_toolchains() {
  local minor
  minor=$(go env GOVERSION 2>/dev/null | sed -n 's/^go1\.\([0-9]*\).*/\1/p')
  if [ -n "$minor" ] && [ "$minor" -ge 21 ]; then
    return 0
  fi
  local prefix="${HUNT_GO_PREFIX:-/usr/local}" module tmp dir
  module="golang.org/toolchain@v0.0.1-go${GO_BOOTSTRAP_VERSION}.linux-$(go env GOARCH)"
  echo "Go $(go env GOVERSION) cannot build the Temporal CLI; fetching Go ${GO_BOOTSTRAP_VERSION} from the module proxy (once)"
  tmp=$(mktemp -d)
  dir=$(GOPATH="$tmp" GOFLAGS=-modcacherw go mod download -json "$module" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  if [ -z "$dir" ] || [ ! -f "$dir/bin/go" ]; then
    echo "could not fetch $module from the Go module proxy; install Go 1.21+ yourself" >&2
    rm -rf "$tmp"
    exit 1
  fi
  # Module zips keep no file modes: the binaries need theirs back.
  chmod +x "$dir"/bin/* "$dir"/pkg/tool/*/*
  as_root mkdir -p "$prefix/lib" "$prefix/bin"
  as_root rm -rf "$prefix/lib/go$GO_BOOTSTRAP_VERSION"
  as_root cp -r "$dir" "$prefix/lib/go$GO_BOOTSTRAP_VERSION"
  as_root ln -sf "$prefix/lib/go$GO_BOOTSTRAP_VERSION/bin/go" "$prefix/bin/go"
  rm -rf "$tmp"
  echo "Go ${GO_BOOTSTRAP_VERSION} installed: $prefix/bin/go"
}

# The Postgres clusters online now, as "version name" lines: none of them is ours to stop.
online_clusters() {
  if command -v pg_lsclusters >/dev/null; then
    pg_lsclusters --no-header 2>/dev/null | awk '$4 == "online" {print $1, $2}' || true
  fi
}

if [ ${#missing[@]} -gt 0 ]; then
  echo "installing system packages (once): ${missing[*]}"
  online_before=$(online_clusters)
  # A mirror's hiccup on a new machine should not end the set-up: each step is tried 3 times.
  with_retries as_root apt-get update -qq
  with_retries as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian's package may start its own cluster on 5432. Ours runs on its own port beside it;
  # stop that one to keep the memory for the stack. Only the one the install started: a
  # cluster that was online before may be the very one DATABASE_URL names, or hold other work.
  if [[ " ${missing[*]} " == *" postgresql "* ]]; then
    online_clusters | while read -r version name; do
      if ! grep -qxF "$version $name" <<<"$online_before"; then
        echo "stopping the Postgres cluster $version/$name that Debian's package started (the stack runs its own)"
        as_root pg_ctlcluster "$version" "$name" stop || true
      fi
    done
  fi
  # Only promtool is wanted from `prometheus`; on a machine with systemd the package also starts
  # a Prometheus server on :9090. Stop it.
  if [[ " ${missing[*]} " == *" prometheus "* ]] && command -v systemctl >/dev/null && systemctl is-active --quiet prometheus 2>/dev/null; then
    as_root systemctl disable --now prometheus || true
  fi
  echo "system packages installed: ${missing[*]}"
fi
if [ "$builds_temporal_cli" = true ]; then
  ensure_go_with_toolchains
fi
