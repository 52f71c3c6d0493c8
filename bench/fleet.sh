#!/usr/bin/env bash
# fleet.sh measures the vendor's centre with a fleet of simulated units: the
# time from `sekisho centre push` to the last unit's acknowledgement, and the
# centre's memory per connected unit. It builds bench/fleet and runs it once
# with every size in $UNITS: for each, a real `sekisho centre serve` on
# 127.0.0.1 with a fresh data directory, that many units enrolled with the
# real fleet.Join and connected with the real fleet.Link (goroutines of the
# benchmark, one TLS connection each), one `sekisho centre push
# --block-international`, and the figures. The report is printed and
# written to bench/results/fleet-<date>.md.
#
# Environment (defaults in brackets):
#   UNITS ["1000 10000"]  fleet sizes, one run each
#   DB []                 PostgreSQL URL for the centre (each run makes and drops
#                         a schema of its own in it); empty: SQLite
#   PG [0]                1: use the local PostgreSQL as scripts/test.sh sets it up
#                         (as root), in a database sekisho_bench
#   TIMEOUT [10m]         bound on each run
#   STATUS_EVERY [30s]    how often each simulated unit reports its figures
#   CONNECT_RATE [0]      units started per second; 0: all at once
#   IDLE [20s]            how long the connected fleet idles before the push
#   JOIN_WORKERS [16]     enrolments in parallel
#   KEEP_TMP [0]          1 keeps the centre's logs and data
set -euo pipefail
bench_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd "$bench_dir/.." && pwd)
command -v go >/dev/null || {
	echo "bench: go is not installed" >&2
	exit 2
}

units=${UNITS:-1000 10000}
db=${DB:-}
if [[ ${PG:-0} == 1 && -z $db ]]; then
	if [[ $(id -u) -ne 0 ]]; then
		echo "bench: PG=1 needs root (it sets up the local PostgreSQL as scripts/test.sh does); or give DB=postgres://..." >&2
		exit 2
	fi
	pgver=$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' 2>/dev/null | sort -V | tail -n 1)
	if [[ -z $pgver ]]; then
		echo "bench: PG=1: PostgreSQL is not installed (apt-get install postgresql, or run scripts/test.sh once)" >&2
		exit 2
	fi
	[[ -d /etc/postgresql/$pgver/main ]] || pg_createcluster "$pgver" main >/dev/null
	pg_ctlcluster "$pgver" main start >/dev/null 2>&1 || true
	pgport=$(pg_lsclusters -h | awk -v v="$pgver" '$1 == v && $2 == "main" { print $3 }')
	for i in $(seq 30); do
		pg_isready -q -h 127.0.0.1 -p "$pgport" && break
		if [[ $i == 30 ]]; then
			echo "bench: PostgreSQL $pgver does not answer on port $pgport" >&2
			exit 1
		fi
		sleep 1
	done
	pgsql() { (cd / && runuser -u postgres -- psql -p "$pgport" -v ON_ERROR_STOP=1 -qtA "$@"); }
	[[ $(pgsql -c "SELECT 1 FROM pg_roles WHERE rolname = 'sekisho'") == 1 ]] || pgsql -c "CREATE ROLE sekisho"
	pgsql -c "ALTER ROLE sekisho LOGIN PASSWORD 'sekisho'"
	[[ $(pgsql -c "SELECT 1 FROM pg_database WHERE datname = 'sekisho_bench'") == 1 ]] ||
		pgsql -c "CREATE DATABASE sekisho_bench OWNER sekisho"
	db="postgres://sekisho:sekisho@127.0.0.1:$pgport/sekisho_bench?sslmode=disable"
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/sekisho-bench-fleet.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
(cd "$repo_root" && go build -o "$tmp/fleet" ./bench/fleet)

args=(-units "${units// /,}" -timeout "${TIMEOUT:-10m}" -status-every "${STATUS_EVERY:-30s}"
	-connect-rate "${CONNECT_RATE:-0}" -idle "${IDLE:-20s}" -join-workers "${JOIN_WORKERS:-16}"
	-results "$bench_dir/results")
[[ -n $db ]] && args+=(-db "$db")
[[ ${KEEP_TMP:-0} == 1 ]] && args+=(-keep)
cd "$repo_root"
"$tmp/fleet" "${args[@]}"
