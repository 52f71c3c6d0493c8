#!/usr/bin/env bash
# register.sh measures how many authenticated registrations per second
# sekisho sustains on this machine. It builds the server, starts it on
# 127.0.0.1 with a fresh data directory, creates $USERS extensions and
# drives it with SIPp (REGISTER -> 401 -> REGISTER with digest -> 200) at
# each rate in $RATES for $DURATION seconds, printing one table row per
# step. The report also goes to bench/results/register-<date>.md.
#
# Environment (defaults in brackets):
#   RATES ["500 1000 2000 4000"]  registrations per second, one step each
#   DURATION [10]        seconds per step
#   USERS [500]          extensions registering in turn
#   SIP_PORT [25060]     server port on 127.0.0.1, UDP and TCP
#   LOCAL_IP [127.0.0.4] address SIPp sends from
#   SETTLE [3]           seconds of rest between steps
#   STOP_FAIL_PCT [20]   stop stepping up once a step fails this often
#   LOG_LEVEL [info]     server log level (info is the server's default)
#   KEEP_TMP [0]         1 keeps the server log and SIPp files
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_init register
need go sipp awk ss

rates=${RATES:-500 1000 2000 4000}
duration=${DURATION:-10}
users=${USERS:-500}
sip_port=${SIP_PORT:-25060}
local_ip=${LOCAL_IP:-127.0.0.4}
local_port=${LOCAL_PORT:-25061}

say "# sekisho REGISTER benchmark"
say ""
machine_info
build_sekisho

# Extensions 3000, 3001, ... with their generated passwords, in SIPp's
# injection format: SEQUENTIAL, then one "number;password;" line each.
csv=$tmp/users.csv
echo SEQUENTIAL >"$csv"
for ((i = 0; i < users; i++)); do
	n=$((3000 + i))
	printf '%s;%s;\n' "$n" "$(add_ext "$n")" >>"$csv"
done
start_sekisho

say ""
say "$users extensions; each step sends REGISTER -> 401 -> REGISTER (digest) -> 200 from $local_ip for ${duration} s."
say "Response time is from the first REGISTER to the 200."
table_header
for rate in $rates; do
	run_step "$rate" "$testdata/register.xml" 1 "$local_ip" "$local_port" \
		-inf "$csv" -key domain 127.0.0.1 -key expires 3600 -l "$((rate * 2 + 100))"
	if awk -v f="$step_fail_pct" -v max="${STOP_FAIL_PCT:-20}" 'BEGIN {exit !(f >= max)}'; then
		say ""
		say "Stopped: $step_fail_pct % of registrations failed at $rate/s."
		break
	fi
	sleep "${SETTLE:-3}"
done
echo "results written to ${results#"$repo_root"/}" >&2
