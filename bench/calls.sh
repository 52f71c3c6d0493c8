#!/usr/bin/env bash
# calls.sh measures how many authenticated calls per second sekisho
# connects on this machine. It builds the server, starts it on 127.0.0.1,
# creates extensions 201 (caller) and 202 (callee), registers a SIPp callee
# as 202 from 127.0.0.2 and keeps it answering, then makes a SIPp caller on
# 127.0.0.3 place calls through the PBX at each rate in $RATES for $DURATION
# seconds:
#
#   INVITE -> 407 -> ACK, INVITE (digest) -> 100/180 -> 200 -> ACK,
#   hold $HOLD_MS, BYE -> 200
#
# The PBX is a B2BUA, so every call is two SIP dialogs on the server. One
# table row is printed per step; the report also goes to
# bench/results/calls-<date>.md.
#
# Environment (defaults in brackets):
#   RATES ["100 200 400 800"]  calls per second, one step each
#   DURATION [10]        seconds per step
#   HOLD_MS [500]        how long each call stays up before the BYE
#   SIP_PORT [25070]     server port on 127.0.0.1, UDP and TCP
#   SETTLE [3]           seconds of rest between steps
#   STOP_FAIL_PCT [20]   stop stepping up once a step fails this often
#   LOG_LEVEL [info]     server log level (info is the server's default)
#   KEEP_TMP [0]         1 keeps the server log and SIPp files
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_init calls
need go sipp awk ss

rates=${RATES:-100 200 400 800}
duration=${DURATION:-10}
hold_ms=${HOLD_MS:-500}
sip_port=${SIP_PORT:-25070}
callee_ip=127.0.0.2
callee_port=${CALLEE_PORT:-25072}
caller_ip=127.0.0.3
caller_port=${CALLER_PORT:-25073}

say "# sekisho call benchmark"
say ""
machine_info
build_sekisho

printf 'SEQUENTIAL\n201;%s;\n' "$(add_ext 201)" >"$tmp/caller.csv"
printf 'SEQUENTIAL\n202;%s;\n' "$(add_ext 202)" >"$tmp/callee.csv"
start_sekisho

# Register the callee's Contact (sip:202@127.0.0.2:PORT) from the very
# address and port the answering SIPp will then listen on.
if ! port_free "$callee_port"; then
	echo "bench: port $callee_port is in use; set CALLEE_PORT" >&2
	exit 1
fi
(cd "$tmp" && sipp "127.0.0.1:$sip_port" -sf "$testdata/register.xml" \
	-inf "$tmp/callee.csv" -key domain 127.0.0.1 -key expires 3600 \
	-m 1 -i "$callee_ip" -p "$callee_port" -nostdin \
	-recv_timeout 5000 -timeout 15s >"$tmp/callee-register.log" 2>&1) || {
	echo "bench: registering the callee 202 failed; SIPp said:" >&2
	tail -20 "$tmp/callee-register.log" >&2
	exit 1
}

# The callee answers every call until the end of the run.
(cd "$tmp" && exec sipp -sf "$testdata/call_uas.xml" -s 202 \
	-i "$callee_ip" -p "$callee_port" -buff_size 4194304 -nostdin \
	-trace_stat -stf "$tmp/callee-stat.csv" -fd 1 \
	-trace_err -error_file "$tmp/callee-errors.log" >"$tmp/callee.log" 2>&1) &
bg_pids+=($!)
sleep 0.5

say ""
say "Caller 201 on $caller_ip calls 202 (SIPp answering on $callee_ip) through the PBX for ${duration} s per step; each call is held ${hold_ms} ms."
say "Response time is setup time: from the first INVITE to the 200, across the 407 challenge and the callee's answer."
table_header
for rate in $rates; do
	# Concurrent calls are about rate x (hold + setup); the limit leaves
	# room for a slow server without letting calls pile up without bound.
	run_step "$rate" "$testdata/call_uac.xml" setup "$caller_ip" "$caller_port" \
		-inf "$tmp/caller.csv" -s 202 -key domain 127.0.0.1 -d "$hold_ms" \
		-l "$((rate * (hold_ms + 3000) / 1000 + 100))"
	if awk -v f="$step_fail_pct" -v max="${STOP_FAIL_PCT:-20}" 'BEGIN {exit !(f >= max)}'; then
		say ""
		say "Stopped: $step_fail_pct % of calls failed at $rate/s."
		break
	fi
	sleep "${SETTLE:-3}"
done

# The callee keeps each call 4 s after the BYE to absorb retransmissions.
sleep 5
say ""
say "Callee (SIPp UAS) over the whole run: $(stat_col "$tmp/callee-stat.csv" 'SuccessfulCall(C)') calls completed, $(stat_col "$tmp/callee-stat.csv" 'FailedCall(C)') failed, $(stat_col "$tmp/callee-stat.csv" 'Retransmissions(C)') retransmissions."
echo "results written to ${results#"$repo_root"/}" >&2
