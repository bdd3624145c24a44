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
# A service given from outside needs no local tool: with DATABASE_URL set, no Postgres server;
# with KAFKA_BROKERS, no Java or Maven; with TEMPORAL_ADDRESS (or a temporal CLI on PATH),
# no Go. Needs root, or sudo, only when something is missing.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
purpose="${1:-test}"
missing=()
if [ -z "${DATABASE_URL:-}" ]; then
  ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || missing+=(postgresql)
fi
if [ -z "${KAFKA_BROKERS:-}" ]; then
  command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
  command -v mvn >/dev/null || missing+=(maven)
fi
if [ -z "${TEMPORAL_ADDRESS:-}" ] && ! command -v temporal >/dev/null; then
  command -v go >/dev/null || missing+=(golang-go)
  # Go fetches the CLI's modules over HTTPS and trusts only the system's CA bundle, which a
  # minimal Debian lacks (Node and Java bring their own).
  [ -s /etc/ssl/certs/ca-certificates.crt ] || missing+=(ca-certificates)
fi
if [ "$purpose" = test ]; then
  command -v chromium >/dev/null || missing+=(chromium)
  command -v promtool >/dev/null || missing+=(prometheus)
  command -v openssl >/dev/null || missing+=(openssl)
  command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || missing+=(haproxy)
fi
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "installing system packages (once): ${missing[*]}"
sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then
  if ! command -v sudo >/dev/null; then
    echo "missing system packages: ${missing[*]}; run as root (or install sudo), or install them yourself: apt-get install ${missing[*]}" >&2
    exit 1
  fi
  sudo_cmd=(sudo)
fi
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian's package may start its own cluster on 5432. Ours runs on its own port beside it;
# stop that one to keep the memory for the stack.
if command -v pg_lsclusters >/dev/null; then
  pg_lsclusters --no-header 2>/dev/null | awk '$4 == "online" {print $1, $2}' | while read -r version name; do
    "${sudo_cmd[@]}" pg_ctlcluster "$version" "$name" stop || true
  done
fi
# Only promtool is wanted from `prometheus`; on a machine with systemd the package also starts
# a Prometheus server on :9090. Stop it.
if [[ " ${missing[*]} " == *" prometheus "* ]] && command -v systemctl >/dev/null && systemctl is-active --quiet prometheus 2>/dev/null; then
  "${sudo_cmd[@]}" systemctl disable --now prometheus || true
fi
echo "system packages installed: ${missing[*]}"
