#!/usr/bin/env bash
# Installs, from Debian's packages, the system tools the embedded stack builds on when they
# are missing: the Postgres server, a Java runtime and Maven (Kafka), Go (the Temporal CLI),
# and promtool (from the `prometheus` package), which npm test uses to check ops/prometheus.
# Needs root (or sudo). Services you already run can be used instead: see docs/configuration.md.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
missing=()
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || missing+=(postgresql)
command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || missing+=(maven)
command -v go >/dev/null || missing+=(golang-go)
command -v chromium >/dev/null || missing+=(chromium)
command -v promtool >/dev/null || missing+=(prometheus)
if [ ${#missing[@]} -eq 0 ]; then
  echo "system packages: all present"
  exit 0
fi
echo "installing system packages: ${missing[*]}"
sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
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
