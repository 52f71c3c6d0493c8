#!/usr/bin/env bash
# memflood.sh shows sekisho's memory over a sustained flood: whether it
# stays bounded, under the --memory-limit it is given, while a phone keeps
# registering. It builds the server, starts it with --memory-limit
# $MEMORY_LIMIT and a ban threshold no flood reaches (--ban-after 1e9:
# the worst case for memory, an attacker whose addresses the guard never
# bans, such as a botnet that stays under the threshold per address, so
# every flood request is parsed, challenged, checked and answered), then
# runs for $DURATION seconds:
#   - a flood of wrong-password registrations (REGISTER -> 401 -> REGISTER
#     with a wrong password -> 401, two transactions each) at $FLOOD_RATE/s
#     from $ATTACKER_IP;
#   - a phone registering at $LEGIT_RATE/s from $LOCAL_IP.
# Every $SAMPLE seconds it prints the server's resident memory (VmRSS),
# its peak so far (VmHWM) and CPU. At the end: the phone's success rate
# and the flood's. Report: bench/results/memflood-<date>.md.
#
#   bash bench/memflood.sh
#   DURATION=60 FLOOD_RATE=2000 bash bench/memflood.sh
#
# Environment (defaults in brackets):
#   DURATION [300]       seconds of flood
#   FLOOD_RATE [5000]    wrong-password registrations a second (2 REGISTERs each)
#   LEGIT_RATE [100]     phone registrations a second
#   MEMORY_LIMIT [512MiB]  sekisho's --memory-limit; "none" passes no flag
#                        (for a binary from before the flag existed)
#   SAMPLE [10]          seconds between memory samples
#   SIP_PORT [25090]     server port on 127.0.0.1
#   ATTACKER_IP [127.0.1.2]  LOCAL_IP [127.0.0.6]  LOCAL_PORT [25091]
#   SEKISHO_BIN []       use this binary instead of building one
#   KEEP_TMP [0]         1 keeps the server log and SIPp files
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need go sipp awk ss
bench_init memflood

duration=${DURATION:-300}
flood_rate=${FLOOD_RATE:-5000}
legit_rate=${LEGIT_RATE:-100}
memory_limit=${MEMORY_LIMIT:-512MiB}
sample=${SAMPLE:-10}
sip_port=${SIP_PORT:-25090}
attacker_ip=${ATTACKER_IP:-127.0.1.2}
local_ip=${LOCAL_IP:-127.0.0.6}
local_port=${LOCAL_PORT:-25091}

say "# sekisho memory under a sustained flood"
say ""
machine_info
say "| command | \`DURATION=$duration FLOOD_RATE=$flood_rate LEGIT_RATE=$legit_rate MEMORY_LIMIT=$memory_limit bash bench/memflood.sh\` |"
build_sekisho

csv=$tmp/phone.csv
printf 'SEQUENTIAL\n201;%s;\n' "$(add_ext 201)" >"$csv"
bad=$tmp/bad.csv
printf 'SEQUENTIAL\n201;not-the-password;\n' >"$bad"
sekisho_args=(--ban-after 1000000000)
if [[ $memory_limit != none ]]; then
	sekisho_args+=(--memory-limit "$memory_limit")
fi
start_sekisho

say ""
say "$attacker_ip floods wrong-password registrations for 201 at $flood_rate/s (never banned: --ban-after 1e9),"
say "while the phone registers 201 from $local_ip at $legit_rate/s, for $duration s; --memory-limit $memory_limit."
say ""
say "| t s | RSS MiB | peak RSS MiB | server CPU % (since last sample) |"
say "|---:|---:|---:|---:|"

fdir=$tmp/flood
pdir=$tmp/phone
mkdir -p "$fdir" "$pdir"
(cd "$fdir" && sipp "127.0.0.1:$sip_port" -sf "$testdata/register_bad.xml" \
	-r "$flood_rate" -rp 1000 -m "$((flood_rate * duration))" -i "$attacker_ip" -p 0 \
	-inf "$bad" -key contact "$attacker_ip:5060" -l "$((flood_rate * 2 + 100))" \
	-buff_size 4194304 -nostdin -recv_timeout 5000 -timeout "$((duration + 30))s" \
	-trace_stat -stf "$fdir/stat.csv" -fd 1 >"$fdir/screen.log" 2>&1) &
bg_pids+=($!)
fpid=$!
(cd "$pdir" && sipp "127.0.0.1:$sip_port" -sf "$testdata/register.xml" \
	-r "$legit_rate" -rp 1000 -m "$((legit_rate * duration))" -i "$local_ip" -p "$local_port" \
	-inf "$csv" -key domain 127.0.0.1 -key expires 3600 \
	-buff_size 4194304 -nostdin -recv_timeout 5000 -timeout "$((duration + 30))s" \
	-trace_stat -stf "$pdir/stat.csv" -fd 1 >"$pdir/screen.log" 2>&1) &
bg_pids+=($!)
ppid_=$!

t0=$(date +%s)
c_prev=$(cpu_ticks "$server_pid")
t_prev=$t0
while kill -0 "$fpid" 2>/dev/null || kill -0 "$ppid_" 2>/dev/null; do
	sleep "$sample"
	kill -0 "$server_pid" 2>/dev/null || {
		say "sekisho died; its log ends:"
		tail -20 "$tmp/server.log" | tee -a "$results"
		exit 1
	}
	now=$(date +%s)
	c=$(cpu_ticks "$server_pid")
	rss=$(awk '/^VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$server_pid/status")
	cpu=$(awk -v a="$c_prev" -v b="$c" -v hz="$clk_tck" -v w="$((now - t_prev))" 'BEGIN {printf "%.0f", (w > 0 ? 100 * (b - a) / hz / w : 0)}')
	say "| $((now - t0)) | $rss | $(peak_rss_mib "$server_pid") | $cpu |"
	c_prev=$c t_prev=$now
done
wait "$fpid" || true
wait "$ppid_" || true

ok=$(stat_col "$pdir/stat.csv" 'SuccessfulCall(C)')
failed=$(stat_col "$pdir/stat.csv" 'FailedCall(C)')
fsent=$(stat_col "$fdir/stat.csv" 'OutgoingCall(C)')
fok=$(stat_col "$fdir/stat.csv" 'SuccessfulCall(C)')
say ""
say "phone: $ok registrations succeeded, $failed failed ($(awk -v o="$ok" -v f="$failed" 'BEGIN {t = o + f; printf "%.2f", (t > 0 ? 100 * o / t : 0)}') % success)"
say "flood: $fsent wrong-password registrations sent, $fok answered with the expected 401 both times"
echo "results written to ${results#"$repo_root"/}" >&2
