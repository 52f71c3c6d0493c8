#!/usr/bin/env bash
# flood.sh measures what a flood from a banned address costs sekisho, and
# whether a phone's registrations still go through meanwhile. It builds
# the server, bans $ATTACKER_IP with the CLI, then for each rate in
# $FLOOD_RATES runs a SIPp flood of wrong-password REGISTERs from that
# address while a legitimate SIPp phone registers at $LEGIT_RATE from
# another. Each step prints the phone's row (the usual table) and the
# flood's: packets the attacker sent per second, all of which the guard
# must drop before parsing. Report: bench/results/flood-<date>.md.
#
# Environment (defaults in brackets):
#   FLOOD_RATES ["0 10000 20000 40000"]  attacker requests per second
#   LEGIT_RATE [200]     phone registrations per second
#   DURATION [10]        seconds per step
#   SIP_PORT [25080]     server port on 127.0.0.1
#   ATTACKER_IP [127.0.1.1]  LOCAL_IP [127.0.0.4]
#   KEEP_TMP [0]         1 keeps the server log and SIPp files
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_init flood
need go sipp awk ss

flood_rates=${FLOOD_RATES:-0 10000 20000 40000}
legit_rate=${LEGIT_RATE:-200}
duration=${DURATION:-10}
sip_port=${SIP_PORT:-25080}
attacker_ip=${ATTACKER_IP:-127.0.1.1}
local_ip=${LOCAL_IP:-127.0.0.4}
local_port=${LOCAL_PORT:-25081}

say "# sekisho flood benchmark"
say ""
machine_info
build_sekisho

csv=$tmp/phone.csv
printf 'SEQUENTIAL\n201;%s;\n' "$(add_ext 201)" >"$csv"
bad=$tmp/bad.csv
printf 'SEQUENTIAL\n201;not-the-password;\n' >"$bad"
"$tmp/sekisho" ban add "$attacker_ip" --for 1h --reason "flood benchmark" --data "$data" >/dev/null
start_sekisho

say ""
say "The phone registers 201 from $local_ip at $legit_rate/s (REGISTER -> 401 -> REGISTER -> 200) for $duration s per step,"
say "while $attacker_ip, banned, floods wrong-password REGISTERs at the step's rate. Server CPU covers both."
for rate in $flood_rates; do
	say ""
	say "## flood $rate/s"
	fdir=$tmp/flood-$rate
	mkdir -p "$fdir"
	fpid=
	if ((rate > 0)); then
		(cd "$fdir" && sipp "127.0.0.1:$sip_port" -sf "$testdata/register_bad.xml" \
			-r "$rate" -rp 1000 -m "$((rate * duration))" -i "$attacker_ip" -p 0 \
			-inf "$bad" -key contact "$attacker_ip:5060" -l "$((rate / 2 + 100))" \
			-buff_size 4194304 -nostdin -recv_timeout 200 -timeout "$((duration + 20))s" \
			-trace_stat -stf "$fdir/stat.csv" -fd 1 >"$fdir/screen.log" 2>&1) &
		fpid=$!
		bg_pids+=("$fpid")
		sleep 1
	fi
	table_header
	run_step "$legit_rate" "$testdata/register.xml" 1 "$local_ip" "$local_port" \
		-inf "$csv" -key domain 127.0.0.1 -key expires 3600
	if [[ -n $fpid ]]; then
		wait "$fpid" || true
		sent=$(stat_col "$fdir/stat.csv" 'OutgoingCall(C)')
		answered=$(stat_col "$fdir/stat.csv" 'SuccessfulCall(C)')
		say ""
		say "flood: $sent REGISTERs sent in about $duration s ($((sent / duration))/s); answered by the PBX: $answered"
	fi
	sleep 2
done
# The guard's drop count is in the server's last log line.
kill -TERM "$server_pid"
for _ in $(seq 50); do
	kill -0 "$server_pid" 2>/dev/null || break
	sleep 0.1
done
say ""
say "packets dropped by the guard over the run: $(grep -o 'guard_dropped=[0-9]*' "$tmp/server.log" | tail -1 | cut -d= -f2)"
echo "results written to ${results#"$repo_root"/}" >&2
