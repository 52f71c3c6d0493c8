#!/usr/bin/env bash
# Runs sekisho's whole test suite on a fresh Debian machine, installing what
# it needs first: the SIP peers the end-to-end tests drive (SIPp, baresip,
# SIPVicious), and staticcheck. Usage: scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages for the real peers. Installed only if something is
# missing, so a developer's second run is quick.
need=()
command -v sipp >/dev/null 2>&1 || need+=(sip-tester)
command -v baresip >/dev/null 2>&1 || need+=(baresip)
command -v svwar >/dev/null 2>&1 || need+=(sipvicious)
command -v sox >/dev/null 2>&1 || need+=(sox)
[ -x /usr/bin/chromium ] || need+=(chromium)
# Japanese glyphs for the console's screenshots.
[ -d /usr/share/fonts/opentype/noto ] || need+=(fonts-noto-cjk)
command -v rsyslogd >/dev/null 2>&1 || [ -x /usr/sbin/rsyslogd ] || need+=(rsyslog)
# PostgreSQL for the maintenance centre's store tests (they run on SQLite
# always, and on PostgreSQL too when SEKISHO_TEST_PG is set, below).
compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null || need+=(postgresql)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "test.sh: missing ${need[*]}; run as root or: sudo apt-get install -y ${need[*]}" >&2
    exit 1
  fi
  echo "== installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

# A PostgreSQL cluster, a role and a database for the centre's tests,
# unless SEKISHO_TEST_PG already names one. Each test makes its own
# schema in it and drops it, so runs do not collide; every step here may
# run again (a second run finds it all in place).
if [ -z "${SEKISHO_TEST_PG:-}" ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "== PostgreSQL: not root, so not set up; the centre's store tests run on SQLite only (set SEKISHO_TEST_PG to include it)"
  else
    pgver=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
    [ -d "/etc/postgresql/$pgver/main" ] || pg_createcluster "$pgver" main >/dev/null
    # Debian's package does not start it where services are not run (a
    # container); pg_ctlcluster fails when it runs already, which is fine.
    pg_ctlcluster "$pgver" main start >/dev/null 2>&1 || true
    pgport=$(pg_lsclusters -h | awk -v v="$pgver" '$1 == v && $2 == "main" { print $3 }')
    for i in $(seq 30); do
      pg_isready -q -h 127.0.0.1 -p "$pgport" && break
      if [ "$i" = 30 ]; then
        echo "test.sh: PostgreSQL $pgver does not answer on port $pgport; its log:" >&2
        tail -n 20 "/var/log/postgresql/postgresql-$pgver-main.log" >&2 || true
        exit 1
      fi
      sleep 1
    done
    pgsql() { (cd / && runuser -u postgres -- psql -p "$pgport" -v ON_ERROR_STOP=1 -qtA "$@"); }
    [ "$(pgsql -c "SELECT 1 FROM pg_roles WHERE rolname = 'sekisho'")" = 1 ] ||
      pgsql -c "CREATE ROLE sekisho"
    pgsql -c "ALTER ROLE sekisho LOGIN PASSWORD 'sekisho'"
    [ "$(pgsql -c "SELECT 1 FROM pg_database WHERE datname = 'sekisho_test'")" = 1 ] ||
      pgsql -c "CREATE DATABASE sekisho_test OWNER sekisho"
    export SEKISHO_TEST_PG="postgres://sekisho:sekisho@127.0.0.1:$pgport/sekisho_test?sslmode=disable"
    echo "== PostgreSQL $pgver on port $pgport for the centre's tests"
  fi
fi

STATICCHECK_VERSION=v0.8.2
echo "== go mod download"
go mod download

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change: $unformatted" >&2
  exit 1
fi

echo "== go vet"
go vet ./...

echo "== staticcheck"
go run "honnef.co/go/tools/cmd/staticcheck@${STATICCHECK_VERSION}" ./...

echo "== static build"
CGO_ENABLED=0 go build -o /dev/null ./cmd/sekisho

echo "== go test (race detector; end-to-end tests with real peers in ./test)"
# The end-to-end tests fail, not skip, when CI=true and a peer is missing.
go test -race -count=1 -timeout 20m ./...
