#!/usr/bin/env bash
# run.sh compares sekisho with Kamailio, side by side, in one run:
#
#   bash bench/run.sh register|calls|flood|media|all
#
# It builds sekisho from this checkout and starts it and Kamailio (the
# Debian package, with bench/kamailio/kamailio.cfg) on loopback, with the
# same users, passwords and realm, then drives each in turn with the same
# SIPp scenarios at a stepped rate and finds each one's highest clean rate:
# the highest step with fewer than $FAIL_MAX_PCT % failures, a p99 response
# time of at most $P99_MAX_MS ms and at least $ACHIEVED_MIN_PCT % of the
# asked rate achieved. Per scenario it prints every step, then a table
# (server, max clean rate, p50/p99 at that rate, server CPU seconds per
# 1,000, peak memory) and the line `ratio sekisho/kamailio: X.XX` (max clean
# rates). The report also goes to bench/results/run-<scenario>-<date>.md.
#
# Scenarios:
#   register  REGISTER -> 401 -> REGISTER with digest -> 200, $USERS users in turn
#   calls     INVITE -> 407 -> ACK, INVITE with digest -> 100/180/200 -> ACK,
#             hold $HOLD_MS, BYE -> 200: sekisho as a B2BUA (its extensions,
#             toll gate and call records), Kamailio as an authenticating
#             stateful proxy; the callee is a SIPp UAS registered to each
#   flood     register and calls again, while $FLOOD_SOURCES other addresses
#             flood wrong-password REGISTERs at $FLOOD_RATE/s in all
#   media     sekisho's media relay alone (bench/mediaload, as media.sh):
#             concurrent G.711 calls, loss and jitter; no Kamailio row
#   all       the four, one after the other, into one report
#
# Addresses and ports (fixed, so that other tests on this machine are not
# disturbed; everything stays within 127.0.0.60-89 and ports 26000-26999):
#   sekisho  127.0.0.61:26061 (UDP and TCP), RTP $RTP_PORTS on 127.0.0.61
#   Kamailio 127.0.0.62:26062 (UDP)
#   SIPp: registering phones 127.0.0.70:26070, caller 127.0.0.71:26071,
#         callee of sekisho 127.0.0.72:26072, callee of Kamailio 127.0.0.73:26073,
#         flood sources 127.0.0.80+i:26080+i; each SIPp's control socket is
#         on its port + 100 and its (unused) media sockets on port + 200, +202
#   media: relay 127.0.0.61 ports $MEDIA_PORTS, phones 127.0.0.74 and .75 from 26000
#
# Environment (defaults in brackets):
#   DURATION [10]          seconds of load per step
#   SETTLE [3]             seconds of rest between steps
#   RATES []               explicit rates (one step each) instead of stepping
#   FACTOR [1.5]           each step's rate is the last one's times this (2 significant digits)
#   REGISTER_START [2000]  first rate of register; CALLS_START [200] of calls
#   FLOOD_REGISTER_START [1000], FLOOD_CALLS_START [100]  the same under the flood
#   MAX_RATE [60000]       never step above this
#   REFINE [1]             1: after the first unclean step, try once between it and the last clean one
#   WARMUP [1]             1: before stepping, register every user once (or make 200 calls) at a low rate, unmeasured
#   FAIL_MAX_PCT [0.1]     a step is clean below this % of failed (or unfinished) scenarios
#   P99_MAX_MS [50]        ... with p99 response time at most this
#   ACHIEVED_MIN_PCT [95]  ... and at least this % of the asked rate achieved
#   USERS [1000]           distinct users registering in turn (register, flood)
#   HOLD_MS [100]          how long each call stays up; sekisho's RTP range
#                          (250 calls at once) caps calls/s at about 2000 at 100 ms
#   RTP_PORTS [26000-26999]  sekisho's RTP port range (4 ports per call)
#   FLOOD_RATE [10000]     wrong-password REGISTERs per second, over all sources
#   FLOOD_SOURCES [2]      flood source addresses (1-10)
#   SERVERS ["sekisho kamailio"]  which servers to run (one alone prints no ratio)
#   KAM_WORKERS [4]        Kamailio UDP worker processes
#   KAM_SHM_MB [512], KAM_PKG_MB [16]  Kamailio shared and per-process memory
#   KAM_AUTHBAN [1]        1: Kamailio bans a source after 10 failed authentications, as sekisho does
#   LOG_LEVEL [info]       sekisho's log level (info is its default)
#   MEDIA_CALLS ["50 100 150 200 250"]  media: concurrent calls, one step each
#   MEDIA_PORTS [26000-26999]  media: relay port range (4 per call: 250 calls)
#   PPS [50], PAYLOAD [160], STOP_LOSS_PCT [0.1], STOP_JITTER_MS [20], STOP_SENT_PCT [98]  media, as media.sh
#   SEKISHO_BIN []         use this sekisho binary instead of building one
#   SEKISHO_ARGS []        more flags for sekisho serve, such as "--pprof-listen 127.0.0.1:26060"
#   KEEP_TMP [0]           1 keeps the servers' logs and SIPp's files
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

scenario=${1:-}
case $scenario in
register | calls | flood | media | all) ;;
*)
	echo "usage: bash bench/run.sh register|calls|flood|media|all" >&2
	exit 2
	;;
esac

need go sipp awk ss ps
if [[ $scenario != media ]]; then
	need kamailio
fi

# ---- settings -------------------------------------------------------------

duration=${DURATION:-10}
settle=${SETTLE:-3}
rates_list=${RATES:-}
factor=${FACTOR:-1.5}
max_rate=${MAX_RATE:-60000}
refine=${REFINE:-1}
fail_max=${FAIL_MAX_PCT:-0.1}
p99_max=${P99_MAX_MS:-50}
achieved_min=${ACHIEVED_MIN_PCT:-95}
users=${USERS:-1000}
hold_ms=${HOLD_MS:-100}
flood_rate=${FLOOD_RATE:-10000}
flood_sources=${FLOOD_SOURCES:-2}
servers=${SERVERS:-sekisho kamailio}
kam_workers=${KAM_WORKERS:-4}
recv_timeout=${RECV_TIMEOUT_MS:-5000}

if ((flood_sources < 1 || flood_sources > 10)); then
	echo "bench: FLOOD_SOURCES must be 1 to 10 (127.0.0.80-89)" >&2
	exit 2
fi
for s in $servers; do
	[[ $s == sekisho || $s == kamailio ]] || {
		echo "bench: SERVERS: unknown server $s" >&2
		exit 2
	}
done

# Addresses and ports (see the top of the file).
declare -A srv_ip=([sekisho]=127.0.0.61 [kamailio]=127.0.0.62)
declare -A srv_port=([sekisho]=26061 [kamailio]=26062)
declare -A srv_pid=()
declare -A srv_tree=()
declare -A callee_ip=([sekisho]=127.0.0.72 [kamailio]=127.0.0.73)
declare -A callee_port=([sekisho]=26072 [kamailio]=26073)
reg_ip=127.0.0.70 reg_port=26070
caller_ip=127.0.0.71 caller_port=26071
rtp_ports=${RTP_PORTS:-26000-26999}

# The results of the series, per server and load: the highest clean rate
# and that step's figures, and why stepping stopped.
declare -A best_rate=() best_p50=() best_p99=() best_perk=() best_rss=() best_okpct=()
declare -A stop_why=() stop_okpct=() best_flood=()

# From here on, a temporary directory and the results file exist, and
# every process started is stopped on exit.
bench_init "run-$scenario"
run_t0=$(date +%s)

# ---- helpers ----------------------------------------------------------------

# untrack PID removes a reaped process from bg_pids, so that the final
# cleanup never signals a PID the system may have given to another process.
untrack() {
	local p keep=()
	for p in "${bg_pids[@]}"; do
		[[ $p == "$1" ]] || keep+=("$p")
	done
	bg_pids=(${keep[@]+"${keep[@]}"})
}

# stop_bg PID... stops background SIPp processes of this run and reaps them.
stop_bg() {
	local p
	for p in "$@"; do
		kill "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
		untrack "$p"
	done
}

# tree_of PID prints PID and all its descendants (Kamailio forks its workers).
tree_of() {
	local p
	echo "$1"
	for p in $(ps -o pid= --ppid "$1" 2>/dev/null || true); do
		tree_of "$p"
	done
}

# tree_ticks PID... prints the user + system CPU clock ticks of the
# processes together. Field 2 (the command name) has no spaces here.
tree_ticks() {
	local p files=()
	for p in "$@"; do
		[[ -r /proc/$p/stat ]] && files+=("/proc/$p/stat")
	done
	awk '{t += $14 + $15} END {print t + 0}' "${files[@]}" 2>/dev/null || echo 0
}

# tree_pss_kib PID... prints the proportional set size of the processes
# together, in KiB: their resident memory with every shared page counted
# once (Kamailio's workers share its shared memory; adding their RSS would
# count it once per process). For one process it is its RSS.
tree_pss_kib() {
	local p files=()
	for p in "$@"; do
		[[ -r /proc/$p/smaps_rollup ]] && files+=("/proc/$p/smaps_rollup")
	done
	awk '/^Pss:/ {s += $2} END {print s + 0}' "${files[@]}" 2>/dev/null || echo 0
}

# rest SERVER waits $SETTLE seconds, then until the server is quiet (under
# 5 % of a core over a second), for at most 60 s more: after an overloaded
# step, a server may still be answering retransmissions or collecting
# garbage, which the next step must not inherit.
rest() {
	local tree=${srv_tree[$1]} a b
	sleep "$settle"
	for _ in $(seq 60); do
		# shellcheck disable=SC2086 # the tree is a list of PIDs
		a=$(tree_ticks $tree)
		sleep 1
		# shellcheck disable=SC2086
		b=$(tree_ticks $tree)
		(((b - a) * 100 < clk_tck * 5)) && return 0
	done
	say "($1 was still busy 60 s after the step)"
}

# sekisho_says PATTERN prints how many lines of the current sekisho log
# match the extended regular expression PATTERN (0 without sekisho).
sekisho_says() {
	if [[ $servers != *sekisho* ]]; then
		echo 0
		return
	fi
	grep -cE "$1" "$tmp/$cur_tag-sekisho.log" || true
}

# The log lines step looks for: sekisho banning one of the benchmark's own
# phones (127.0.0.70-79, which never send a wrong password), and sekisho
# refusing a call because the run's RTP port range is used up.
legit_ban_re='msg="guard: banned" source=127\.0\.0\.7[0-9]'
ports_out_re='RTP port range exhausted'

# busy_ticks prints the CPU clock ticks the whole machine has spent busy
# (all cores: user, nice, system, irq, softirq, steal), from /proc/stat.
busy_ticks() {
	awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9; exit}' /proc/stat
}

# sig2 X prints X rounded to two significant digits.
sig2() {
	awk -v x="$1" 'BEGIN {e = int(log(x) / log(10) + 1e-9); m = 10 ^ (e - 1); if (m < 1) m = 1; printf "%d\n", int(x / m + 0.5) * m}'
}

# sipp_at IP PORT prints the SIPp options that pin one SIPp instance to its
# address: SIP socket, control socket (port + 100) and media sockets
# (port + 200 and + 202), all inside this run's range.
sipp_at() {
	echo "-i $1 -p $2 -ci $1 -cp $(($2 + 100)) -mp $(($2 + 200))"
}

# ---- users ------------------------------------------------------------------

# make_users creates, once per run, a sekisho data directory holding the
# extensions 201 (caller), 202 (callee) and 3000... ($USERS registering
# users) with their generated passwords, then writes the same users and
# passwords as Kamailio's db_text table and as SIPp injection files
# (users.csv, caller.csv, callee.csv, and bad.csv with wrong passwords).
make_users() {
	[[ -d $tmp/data-template ]] && return 0
	local tpl=$tmp/data-template out=$tmp/ext-json n pw i
	mkdir -p "$out" "$tmp/kamdb"
	"$tmp/sekisho" ext add 201 --data "$tpl" --json >"$out/201.json"
	# The rest four at a time: each `ext add` is one process and one
	# SQLite transaction; four in parallel halve the wait on two cores.
	# shellcheck disable=SC2016 # the inner shell expands its arguments
	{
		echo 202
		seq 3000 $((3000 + users - 1))
	} | xargs -P 4 -I{} sh -c '"$1" ext add "$2" --data "$3" --json >"$4/$2.json"' _ "$tmp/sekisho" {} "$tpl" "$out"
	printf 'id(int,auto) table_name(string) table_version(int) \n0:version:1\n0:htable:2\n' >"$tmp/kamdb/version"
	echo 'id(int,auto) key_name(string) key_type(int) value_type(int) key_value(string) expires(int) ' >"$tmp/kamdb/htable"
	echo SEQUENTIAL >"$tmp/users.csv"
	echo SEQUENTIAL >"$tmp/bad.csv"
	i=0
	for n in 201 202 $(seq 3000 $((3000 + users - 1))); do
		pw=$(sed -n 's/.*"password" *: *"\([^"]*\)".*/\1/p' "$out/$n.json")
		if [[ -z $pw || $pw == *[\;:\\]* ]]; then
			echo "bench: ext add $n: no usable password in: $(cat "$out/$n.json")" >&2
			exit 1
		fi
		i=$((i + 1))
		printf '%d:%s:0:0:%s:0\n' "$i" "$n" "$pw" >>"$tmp/kamdb/htable"
		case $n in
		201) printf 'SEQUENTIAL\n201;%s;\n' "$pw" >"$tmp/caller.csv" ;;
		202) printf 'SEQUENTIAL\n202;%s;\n' "$pw" >"$tmp/callee.csv" ;;
		*)
			printf '%s;%s;\n' "$n" "$pw" >>"$tmp/users.csv"
			printf '%s;wrong-%s;\n' "$n" "$pw" >>"$tmp/bad.csv"
			;;
		esac
	done
	rm -rf "$out"
}

# ---- servers ----------------------------------------------------------------

# start_servers starts a fresh sekisho (its data directory copied from the
# template) and a fresh Kamailio, each as SERVERS asks, and waits until each
# listens. The logs go to $tmp/<scenario>-<server>.log.
start_servers() {
	local tag=$1 s kdir
	for s in $servers; do
		case $s in
		sekisho)
			data=$tmp/data-$tag
			cp -a "$tmp/data-template" "$data"
			sip_ip=${srv_ip[sekisho]} sip_port=${srv_port[sekisho]}
			server_log=$tmp/$tag-sekisho.log
			sekisho_args=(--rtp-ports "$rtp_ports")
			start_sekisho
			srv_pid[sekisho]=$server_pid
			;;
		kamailio)
			kdir=$tmp/kamailio-$tag
			mkdir -p "$kdir"
			if ! port_free "${srv_port[kamailio]}" "${srv_ip[kamailio]}"; then
				echo "bench: ${srv_ip[kamailio]}:${srv_port[kamailio]} is in use" >&2
				exit 1
			fi
			local kargs=(-f "$bench_dir/kamailio/kamailio.cfg" -m "${KAM_SHM_MB:-512}" -M "${KAM_PKG_MB:-16}"
				-Y "$kdir" -w "$kdir"
				-A "LISTEN_IP=${srv_ip[kamailio]}" -A "LISTEN_PORT=${srv_port[kamailio]}"
				-A "WORKERS=$kam_workers" -A "DBURL=\"text://$tmp/kamdb\"")
			if [[ ${KAM_AUTHBAN:-1} == 1 ]]; then
				kargs+=(-A AUTHBAN)
			fi
			# Check the configuration first, then run in the foreground
			# (-DD: no daemon; -E: log to stderr) as a child of this shell.
			kamailio -c "${kargs[@]}" >"$kdir/check.log" 2>&1 || {
				echo "bench: kamailio rejects its configuration:" >&2
				cat "$kdir/check.log" >&2
				exit 1
			}
			kamailio -DD -E "${kargs[@]}" >"$tmp/$tag-kamailio.log" 2>&1 &
			srv_pid[kamailio]=$!
			stop_pids=("${srv_pid[kamailio]}")
			for _ in $(seq 100); do
				port_free "${srv_port[kamailio]}" "${srv_ip[kamailio]}" || break
				kill -0 "${srv_pid[kamailio]}" 2>/dev/null || break
				sleep 0.1
			done
			if ! kill -0 "${srv_pid[kamailio]}" 2>/dev/null || port_free "${srv_port[kamailio]}" "${srv_ip[kamailio]}"; then
				echo "bench: kamailio did not start:" >&2
				tail -20 "$tmp/$tag-kamailio.log" >&2
				exit 1
			fi
			sleep 0.5 # its workers finish their own start-up
			;;
		esac
		srv_tree[$s]=$(tree_of "${srv_pid[$s]}" | tr '\n' ' ')
	done
}

# stop_servers stops both servers and says what their memory was at the
# end, what sekisho's peak was, and what their logs complain about.
stop_servers() {
	local tag=$1 s
	say ""
	say "Servers at the end of $tag: their memory now (PSS of all their processes), and their logs' warnings and errors:"
	say ""
	for s in $servers; do
		# shellcheck disable=SC2086 # srv_tree is a list of PIDs
		say "- $s: $(awk -v k="$(tree_pss_kib ${srv_tree[$s]})" 'BEGIN {printf "%.0f", k / 1024}') MiB now$(
			[[ $s == sekisho ]] && echo ", $(peak_rss_mib "${srv_pid[$s]}") MiB at its peak (VmHWM)"
		), $(echo "${srv_tree[$s]}" | wc -w) process(es)"
	done
	for s in $servers; do
		stop_pid "${srv_pid[$s]}"
		wait "${srv_pid[$s]}" 2>/dev/null || true
	done
	server_pid='' stop_pids=()
	for s in $servers; do
		log_summary "$s" "$tmp/$tag-$s.log"
	done
}

# log_summary SERVER FILE says how many warning and error lines the
# server's log holds, and the five most frequent messages among them.
log_summary() {
	local s=$1 f=$2 top
	if [[ $s == sekisho ]]; then
		top=$(awk '/level=(WARN|ERROR)/ {
				lvl = $0; sub(/.*level=/, "", lvl); sub(/ .*/, "", lvl)
				msg = $0; sub(/.*msg=/, "", msg); if (msg ~ /^"/) { sub(/^"/, "", msg); sub(/".*/, "", msg) } else sub(/ .*/, "", msg)
				n[lvl " " msg]++
			}
			END {for (k in n) print n[k], k}' "$f" | sort -rn | head -5)
	else
		# Kamailio: from the level on, numbers (PIDs, addresses) as N.
		top=$(awk 'match($0, /(ERROR|WARNING|CRITICAL|ALERT):.*/) {
				m = substr($0, RSTART); gsub(/[0-9]+/, "N", m)
				n[substr(m, 1, 120)]++
			}
			END {for (k in n) print n[k], k}' "$f" | sort -rn | head -5)
	fi
	if [[ -z $top ]]; then
		say "- $s log: no warnings or errors"
	else
		say "- $s log, most frequent warnings and errors (count, message):"
		while IFS= read -r line; do say "    - $line"; done <<<"$top"
	fi
}

# register_callees registers extension 202's Contact on each server from its
# callee address, then starts there a SIPp UAS answering every call until
# the end of the scenario (its PIDs go to callee_pids).
register_callees() {
	local s ip port
	callee_pids=()
	for s in $servers; do
		ip=${callee_ip[$s]} port=${callee_port[$s]}
		# shellcheck disable=SC2046 # sipp_at prints separate options
		(cd "$tmp" && sipp "${srv_ip[$s]}:${srv_port[$s]}" -sf "$testdata/register.xml" \
			-inf "$tmp/callee.csv" -key domain "${srv_ip[$s]}" -key expires 3600 \
			-m 1 $(sipp_at "$ip" "$port") -nostdin \
			-recv_timeout 5000 -timeout 15s >"$tmp/callee-register-$s.log" 2>&1) || {
			echo "bench: registering the callee 202 on $s failed; SIPp said:" >&2
			tail -20 "$tmp/callee-register-$s.log" >&2
			exit 1
		}
		# shellcheck disable=SC2046
		# -timeout: the run stops it; this bounds it should the run be killed.
		(cd "$tmp" && exec sipp -sf "$testdata/call_uas.xml" -s 202 $(sipp_at "$ip" "$port") \
			-buff_size 4194304 -nostdin -timeout 7200s \
			-trace_stat -stf "$tmp/callee-stat-$s.csv" -fd 1 >"$tmp/callee-$s.log" 2>&1) &
		bg_pids+=($!)
		callee_pids+=($!)
	done
	sleep 0.5
}

# stop_callees stops the answering SIPps, after their 4 s linger.
stop_callees() {
	local s
	sleep 5
	stop_bg "${callee_pids[@]}"
	say ""
	for s in $servers; do
		say "- callee of $s (SIPp UAS) over the scenario: $(stat_col "$tmp/callee-stat-$s.csv" 'SuccessfulCall(C)') calls completed, $(stat_col "$tmp/callee-stat-$s.csv" 'FailedCall(C)') failed, $(stat_col "$tmp/callee-stat-$s.csv" 'Retransmissions(C)') retransmissions"
	done
}

# ---- the flood --------------------------------------------------------------

# flood_start SERVER starts $FLOOD_SOURCES SIPps flooding the server with
# wrong-password REGISTERs (register_bad.xml) from 127.0.0.80 upwards, at
# $FLOOD_RATE/s together, for a second more than the coming step; a banned
# source gets no answer, so each of its attempts ends after 200 ms.
flood_start() {
	local s=$1 i ip port per dir
	per=$((flood_rate / flood_sources))
	flood_pids=() flood_dirs=()
	flood_t0=$(date +%s.%N)
	for ((i = 0; i < flood_sources; i++)); do
		ip=127.0.0.$((80 + i)) port=$((26080 + i))
		dir=$tmp/flood-$s-$step_id-$i
		mkdir -p "$dir"
		# shellcheck disable=SC2046
		(cd "$dir" && exec sipp "${srv_ip[$s]}:${srv_port[$s]}" -sf "$testdata/register_bad.xml" \
			-r "$per" -rp 1000 -m "$((per * (duration + 3)))" $(sipp_at "$ip" "$port") \
			-inf "$tmp/bad.csv" -key contact "$ip:$port" -l "$((per / 2 + 100))" \
			-buff_size 4194304 -nostdin -recv_timeout 200 -timeout "$((duration + 30))s" \
			-trace_stat -stf "$dir/stat.csv" -fd 1 >"$dir/screen.log" 2>&1) &
		bg_pids+=($!)
		flood_pids+=($!)
		flood_dirs+=("$dir")
	done
	sleep 1
}

# flood_end waits for the flood SIPps (each bounded by -m and -timeout) and
# sets flood_sent_rate (REGISTERs sent per second, all sources) and
# flood_answered (% of flood attempts the server answered both times).
flood_end() {
	local p d sent=0 ans=0 t1
	for p in "${flood_pids[@]}"; do
		wait "$p" 2>/dev/null || true
		untrack "$p"
	done
	t1=$(date +%s.%N)
	for d in "${flood_dirs[@]}"; do
		[[ -s $d/stat.csv ]] || continue
		sent=$((sent + $(stat_col "$d/stat.csv" 'OutgoingCall(C)')))
		ans=$((ans + $(stat_col "$d/stat.csv" 'SuccessfulCall(C)')))
	done
	flood_sent_rate=$(awk -v n="$sent" -v a="$flood_t0" -v b="$t1" 'BEGIN {printf "%.0f", n / (b - a)}')
	flood_answered=$(awk -v n="$sent" -v a="$ans" 'BEGIN {printf "%.2f", (n > 0 ? 100 * a / n : 0)}')
}

# ---- one load step ------------------------------------------------------------

# step SERVER LOAD RATE FLOOD runs one bounded SIPp load (LOAD register or
# calls) against SERVER at RATE/s for $duration s, with the flood running
# if FLOOD is 1, and prints its row. It sets st_clean (1 or 0), st_why (why
# not clean), st_okpct, st_p50, st_p99, st_perk and st_rss.
step() {
	local s=$1 load=$2 rate=$3 flood=$4
	step_id=$((${step_id:-0} + 1))
	local dir=$tmp/step-$step_id-$s-$load-$rate
	mkdir -p "$dir"
	local count=$((rate * duration)) sf rtd lip lport extra=()
	case $load in
	register)
		sf=$testdata/register.xml rtd=1 lip=$reg_ip lport=$reg_port
		extra=(-inf "$tmp/users.csv" -key domain "${srv_ip[$s]}" -key expires 3600 -l "$((rate * 2 + 100))")
		;;
	calls)
		sf=$testdata/call_uac.xml rtd=setup lip=$caller_ip lport=$caller_port
		# Concurrent calls are about rate x (hold + setup); the limit
		# leaves room for a slow server without an unbounded pile-up.
		extra=(-inf "$tmp/caller.csv" -s 202 -key domain "${srv_ip[$s]}" -d "$hold_ms"
			-l "$((rate * (hold_ms + 3000) / 1000 + 100))")
		;;
	esac
	if [[ $flood == 1 ]] && ((flood_rate > 0)); then
		flood_start "$s"
	fi
	# shellcheck disable=SC2086 # the tree is a list of PIDs
	local tree=${srv_tree[$s]} c0 c1 m0 m1 t0 t1 rc=0 pid pss peak=0 sipp_ticks=0 x bans0 bans1 out0 out1
	bans0=$(sekisho_says "$legit_ban_re") out0=$(sekisho_says "$ports_out_re")
	# shellcheck disable=SC2086
	c0=$(tree_ticks $tree)
	m0=$(busy_ticks)
	t0=$(date +%s.%N)
	# SIPp writes the -trace_rtt file into its working directory.
	# -timeout bounds the step even if SIPp cannot reach the target rate.
	# shellcheck disable=SC2046
	(cd "$dir" && exec sipp "${srv_ip[$s]}:${srv_port[$s]}" -sf "$sf" \
		-r "$rate" -rp 1000 -m "$count" $(sipp_at "$lip" "$lport") \
		-buff_size 4194304 -max_socket 1024 -nostdin \
		-recv_timeout "$recv_timeout" -timeout "$((duration * 2 + 20))s" \
		-trace_stat -stf "$dir/stat.csv" -fd 1 \
		-trace_rtt -rtt_freq 100 \
		-trace_err -error_file "$dir/errors.log" \
		"${extra[@]}" >"$dir/screen.log" 2>&1) &
	pid=$!
	bg_pids+=("$pid")
	# While SIPp runs: sample the server's memory (PSS of its processes)
	# and SIPp's own CPU time twice a second.
	while kill -0 "$pid" 2>/dev/null; do
		# shellcheck disable=SC2086
		pss=$(tree_pss_kib $tree)
		((pss > peak)) && peak=$pss
		x=$(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || true)
		[[ -n $x ]] && sipp_ticks=$x
		sleep 0.5
	done
	wait "$pid" || rc=$?
	untrack "$pid"
	t1=$(date +%s.%N)
	for x in $tree; do
		if ! kill -0 "$x" 2>/dev/null; then
			say "$s (PID $x) died during the $rate/s $load step; its log ends:"
			tail -20 "$tmp/$cur_tag-$s.log" | tee -a "$results"
			exit 1
		fi
	done
	# shellcheck disable=SC2086
	c1=$(tree_ticks $tree)
	m1=$(busy_ticks)
	flood_sent_rate=0 flood_answered=-
	if [[ $flood == 1 ]] && ((flood_rate > 0)); then
		flood_end
	fi

	# SIPp exits 0 when every call succeeded and 1 when some failed; any
	# other code means it stopped early, and the row covers part of it.
	local stat=$dir/stat.csv rtts
	rtts=("$dir"/*_rtt.csv)
	if [[ ! -s $stat ]]; then
		say "| $s | $rate | SIPp wrote no statistics (exit $rc); see KEEP_TMP=1 $dir |"
		st_clean=0 st_why="SIPp wrote no statistics (exit $rc)" st_okpct=0
		return
	fi
	local created ok retrans timeouts achieved p50 p99 wall cpu_s per_k cpu_pct sipp_pct other_pct fail_pct rss_mib
	created=$(stat_col "$stat" 'OutgoingCall(C)')
	ok=$(stat_col "$stat" 'SuccessfulCall(C)')
	retrans=$(stat_col "$stat" 'Retransmissions(C)')
	timeouts=$(($(stat_col "$stat" 'FailedTimeoutOnRecv(C)') + $(stat_col "$stat" 'FailedMaxUDPRetrans(C)')))
	read -r _ achieved p50 p99 < <(rtt_summary "${rtts[0]}" "$rtd")
	wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", b - a}')
	cpu_s=$(awk -v a="$c0" -v b="$c1" -v hz="$clk_tck" 'BEGIN {printf "%.2f", (b - a) / hz}')
	per_k=$(awk -v s="$cpu_s" -v ok="$ok" 'BEGIN {if (ok > 0) printf "%.3f", s * 1000 / ok; else print "-"}')
	cpu_pct=$(awk -v s="$cpu_s" -v w="$wall" 'BEGIN {printf "%.0f", 100 * s / w}')
	sipp_pct=$(awk -v t="$sipp_ticks" -v hz="$clk_tck" -v w="$wall" 'BEGIN {printf "%.0f", 100 * t / hz / w}')
	# Everything else the machine ran meanwhile: other tests on a shared
	# box, and the flood's SIPps.
	other_pct=$(awk -v m="$((m1 - m0))" -v c="$((c1 - c0))" -v t="$sipp_ticks" -v hz="$clk_tck" -v w="$wall" \
		'BEGIN {o = 100 * (m - c - t) / hz / w; printf "%.0f", (o < 0 ? 0 : o)}')
	rss_mib=$(awk -v k="$peak" 'BEGIN {printf "%.0f", k / 1024}')
	# Failed: everything asked for that did not complete (failed, or still
	# unfinished when SIPp stopped).
	fail_pct=$(awk -v c="$count" -v ok="$ok" 'BEGIN {printf "%.2f", (c > 0 ? 100 * (c - ok) / c : 100)}')
	st_okpct=$(awk -v c="$count" -v ok="$ok" 'BEGIN {printf "%.2f", (c > 0 ? 100 * ok / c : 0)}')
	st_p50=$p50 st_p99=$p99 st_perk=$per_k st_rss=$rss_mib
	st_why=$(awk -v f="$fail_pct" -v fm="$fail_max" -v p="$p99" -v pm="$p99_max" \
		-v a="$achieved" -v r="$rate" -v am="$achieved_min" -v rc="$rc" 'BEGIN {
			if (f + 0 >= fm + 0) printf "%s %% failed", f
			else if (p == "-" || p + 0 > pm + 0) printf "p99 %s ms > %s ms", p, pm
			else if (a + 0 < r * am / 100) printf "achieved %s/s < %s %% of %s/s", a, am, r
			else if (rc != 0 && rc != 1) printf "SIPp stopped early (exit %s)", rc
		}')
	bans1=$(sekisho_says "$legit_ban_re") out1=$(sekisho_says "$ports_out_re")
	if [[ $s == sekisho ]]; then
		# Such a ban fails every later step of that phone: not clean.
		if ((bans1 > bans0)); then
			st_why="${st_why:+$st_why; }sekisho banned the benchmark's phone $lip"
		fi
		# Refused calls fail the step anyway; this says why: a limit of
		# this run's port range, reached because calls took longer.
		if ((out1 > out0)); then
			st_why="${st_why:+$st_why; }$((out1 - out0)) calls refused: the run's RTP port range ($rtp_ports) was used up"
		fi
	fi
	st_clean=1
	if [[ -n $st_why ]]; then
		st_clean=0
		# A load generator near a full core may be the limit, not the server.
		if ((sipp_pct >= 90)); then
			st_why="$st_why; SIPp at $sipp_pct % CPU"
		fi
	fi
	local row="| $s | $rate | $created | $ok | $fail_pct | $achieved | $p50 | $p99 | $retrans | $timeouts | $per_k | $cpu_pct | $sipp_pct | $other_pct | $rss_mib |"
	if [[ $flood == 1 ]]; then
		row="$row $flood_sent_rate | $flood_answered |"
	fi
	say "$row $([[ $st_clean == 1 ]] && echo yes || echo "no: $st_why") |"
}

# warmup LOAD gives every server an unmeasured start, as a PBX in service
# has: every user registers once (register), or 200 calls go through
# (calls), at a low rate. Without it the first step carries each server's
# cold start (first bindings, first allocations), which is not its speed.
warmup() {
	local load=$1 s dir n r sf lip lport extra=() ok line=
	for s in $servers; do
		dir=$tmp/warmup-$cur_tag-$s-$load
		mkdir -p "$dir"
		case $load in
		register)
			n=$((users > 100 ? users : 100)) r=500 sf=$testdata/register.xml lip=$reg_ip lport=$reg_port
			extra=(-inf "$tmp/users.csv" -key domain "${srv_ip[$s]}" -key expires 3600)
			;;
		calls)
			n=200 r=100 sf=$testdata/call_uac.xml lip=$caller_ip lport=$caller_port
			extra=(-inf "$tmp/caller.csv" -s 202 -key domain "${srv_ip[$s]}" -d "$hold_ms")
			;;
		esac
		# shellcheck disable=SC2046
		(cd "$dir" && exec sipp "${srv_ip[$s]}:${srv_port[$s]}" -sf "$sf" -r "$r" -m "$n" \
			$(sipp_at "$lip" "$lport") -buff_size 4194304 -nostdin -recv_timeout "$recv_timeout" \
			-timeout "$((n * 2 / r + 20))s" -trace_stat -stf "$dir/stat.csv" -fd 1 \
			"${extra[@]}" >"$dir/screen.log" 2>&1) || true
		ok=0
		[[ -s $dir/stat.csv ]] && ok=$(stat_col "$dir/stat.csv" 'SuccessfulCall(C)')
		line="$line${line:+, }$s $ok of $n"
		sleep 1
	done
	say ""
	say "Warm-up (not measured): $line $([[ $load == register ]] && echo registrations || echo calls) at a low rate."
}

# step_header FLOOD prints the header of the table of steps.
step_header() {
	local h="| server | target /s | attempted | ok | failed % | achieved /s | p50 ms | p99 ms | retrans | timeouts | server CPU s per 1k | server CPU % | SIPp CPU % | other CPU % | peak RSS MiB |"
	local a="|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
	if [[ $1 == 1 ]]; then
		h="$h flood sent /s | flood answered % |"
		a="$a---:|---:|"
	fi
	say ""
	say "$h clean |"
	say "$a---|"
}

# ---- stepping ---------------------------------------------------------------

# rate_list START prints the rates to step through: $RATES, or START times
# $FACTOR again and again (2 significant digits) up to $MAX_RATE.
rate_list() {
	local rate=$1 list=
	if [[ -n $rates_list ]]; then
		echo "$rates_list"
		return
	fi
	while ((rate <= max_rate)); do
		list="$list $rate"
		rate=$(sig2 "$(awk -v r="$rate" -v f="$factor" 'BEGIN {print r * f}')")
	done
	echo "$list"
}

# record SERVER LOAD RATE notes one step's outcome: a clean step becomes the
# server's best so far; the first unclean one ends its stepping.
record() {
	local key=$1/$2
	if [[ $st_clean == 1 ]]; then
		best_rate[$key]=$3 best_p50[$key]=$st_p50 best_p99[$key]=$st_p99
		best_perk[$key]=$st_perk best_rss[$key]=$st_rss best_okpct[$key]=$st_okpct
		best_flood[$key]=$flood_sent_rate
	else
		stop_why[$key]="$3/s: $st_why" stop_okpct[$key]=$st_okpct
	fi
}

# loads LOAD START FLOOD steps every server's rate up from START (or
# through $RATES) until one of its steps is not clean. The servers take
# turns at each rate, so that both see the machine in the same state (it
# may be shared). Then, with REFINE=1, each server tries once between its
# last clean rate and its first unclean one. The highest clean rate and its
# step's figures go to the best_* arrays, keyed SERVER/LOAD; then the
# result table and the ratio are printed.
loads() {
	local load=$1 start=$2 flood=$3 s rate mid
	local -A active=() last=() bad=()
	for s in $servers; do
		active[$s]=1 last[$s]=0 bad[$s]=0
		best_rate[$s/$load]=0 stop_why[$s/$load]="none up to the last rate" stop_okpct[$s/$load]=-
	done
	if [[ ${WARMUP:-1} == 1 ]]; then
		warmup "$load"
	fi
	step_header "$flood"
	for rate in $(rate_list "$start"); do
		for s in $servers; do
			[[ ${active[$s]} == 1 ]] || continue
			step "$s" "$load" "$rate" "$flood"
			record "$s" "$load" "$rate"
			if [[ $st_clean == 1 ]]; then
				last[$s]=$rate
			else
				bad[$s]=$rate active[$s]=0
			fi
			rest "$s"
		done
		[[ " ${active[*]} " == *" 1 "* ]] || break
	done
	if [[ $refine == 1 && -z $rates_list ]]; then
		for s in $servers; do
			((last[$s] > 0 && bad[$s] > 0)) || continue
			mid=$(sig2 "$(awk -v a="${last[$s]}" -v b="${bad[$s]}" 'BEGIN {print sqrt(a * b)}')")
			((mid > last[$s] && mid < bad[$s])) || continue
			step "$s" "$load" "$mid" "$flood"
			record "$s" "$load" "$mid"
			rest "$s"
		done
	fi
	summary "$load" "$flood"
}

# summary LOAD FLOOD prints the result table of one load (each server's
# highest clean rate and its figures) and the ratio line.
summary() {
	local load=$1 flood=$2 s key h a
	h="| server | max clean rate /s | p50 ms | p99 ms | server CPU s per 1k | peak RSS MiB |"
	a="|---|---:|---:|---:|---:|---:|"
	if [[ $flood == 1 ]]; then
		h="$h legit success % at max | legit success % next step | flood sent /s at max |"
		a="$a---:|---:|---:|"
	fi
	say ""
	say "$h first unclean step |"
	say "$a---|"
	for s in $servers; do
		key=$s/$load
		local row best=${best_rate[$s/$load]}
		if ((best > 0)); then
			row="| $s | ${best_rate[$key]} | ${best_p50[$key]} | ${best_p99[$key]} | ${best_perk[$key]} | ${best_rss[$key]} |"
		else
			row="| $s | 0 (none clean) | - | - | - | - |"
		fi
		if [[ $flood == 1 ]]; then
			row="$row ${best_okpct[$key]:--} | ${stop_okpct[$key]} | ${best_flood[$key]:--} |"
		fi
		say "$row ${stop_why[$key]} |"
	done
	if [[ $servers == *sekisho* && $servers == *kamailio* ]]; then
		say ""
		local sek=${best_rate[sekisho/$load]} kam=${best_rate[kamailio/$load]}
		if ((kam > 0)); then
			say "ratio sekisho/kamailio: $(awk -v a="$sek" -v b="$kam" 'BEGIN {printf "%.2f", a / b}')"
		else
			say "ratio sekisho/kamailio: - (Kamailio had no clean step; lower the start rate)"
		fi
	fi
}

# ---- scenarios --------------------------------------------------------------

# criteria prints how a step is judged clean.
criteria() {
	say "A step is clean with less than $fail_max % of the scenarios failed or unfinished, p99 at most $p99_max ms and at least $achieved_min % of the asked rate achieved."
	if [[ -n $rates_list ]]; then
		say "Rates: $rates_list per second, ${duration} s each, $settle s apart."
	else
		say "Rates: from the start rate, times $factor (2 significant digits) until a step is not clean$([[ $refine == 1 ]] && echo ", then once between the last clean rate and that one"), ${duration} s each, $settle s apart."
	fi
	say "Columns: see bench/README.md. Server CPU and peak RSS cover all of the server's processes (Kamailio: its main process and workers); peak RSS is their summed proportional set size (shared pages counted once), sampled every 0.5 s. SIPp CPU % is the load generator's, which shares the machine; other CPU % is everything else the machine ran during the step (on a shared box, other work; under the flood, the flood's SIPps), 100 % being one core of $(nproc)."
}

scenario_register() {
	cur_tag=register
	say ""
	say "## register: REGISTER with digest authentication"
	say ""
	say "$users users (3000-$((3000 + users - 1))) register in turn from $reg_ip: REGISTER -> 401 -> REGISTER (digest) -> 200, realm sekisho."
	say "Response time: first REGISTER to the 200. CPU per 1k: per 1,000 registrations (2 REGISTER transactions each)."
	criteria
	start_servers register
	loads register "${REGISTER_START:-2000}" 0
	stop_servers register
}

scenario_calls() {
	cur_tag=calls
	say ""
	say "## calls: authenticated call set-up and tear-down"
	say ""
	say "Caller 201 on $caller_ip calls 202 (a SIPp UAS registered from ${callee_ip[sekisho]} on sekisho, ${callee_ip[kamailio]} on Kamailio):"
	say "INVITE -> 407 -> ACK, INVITE (digest) -> 100/180/200 -> ACK, hold ${hold_ms} ms, BYE -> 200."
	say "sekisho is a B2BUA (toll gate, call records, media relay ports allocated); Kamailio an authenticating stateful proxy with record-routing."
	say "Response time: first INVITE to the 200. CPU per 1k: per 1,000 calls."
	criteria
	start_servers calls
	register_callees
	loads calls "${CALLS_START:-200}" 0
	stop_callees
	stop_servers calls
}

scenario_flood() {
	cur_tag=flood
	say ""
	say "## flood: register and calls under a wrong-password flood"
	say ""
	say "During every step, $flood_sources source(s) from 127.0.0.80 send REGISTERs with wrong passwords for the same users at $flood_rate/s in all (register_bad.xml, 200 ms answer timeout, so unanswered attempts are not retransmitted)."
	say "Both servers ban a source after 10 failed authentications$([[ ${KAM_AUTHBAN:-1} == 1 ]] || echo " (Kamailio: not in this run, KAM_AUTHBAN=0)") and then drop what it sends; the legitimate phones never fail one."
	say "legit success %: completed ÷ asked in the step at the max clean rate, and in the first unclean step."
	criteria
	start_servers flood
	register_callees
	say ""
	say "### flood: register"
	loads register "${FLOOD_REGISTER_START:-1000}" 1
	say ""
	say "### flood: calls"
	loads calls "${FLOOD_CALLS_START:-100}" 1
	stop_callees
	stop_servers flood
}

scenario_media() {
	say ""
	say "## media: relayed G.711 (sekisho only)"
	say ""
	(cd "$repo_root" && go build -o "$tmp/mediaload" ./bench/mediaload)
	calls_list=${MEDIA_CALLS:-50 100 150 200 250}
	pps=${PPS:-50} payload=${PAYLOAD:-160} ports=${MEDIA_PORTS:-26000-26999}
	stop_loss=${STOP_LOSS_PCT:-0.1} stop_jitter=${STOP_JITTER_MS:-20} stop_sent=${STOP_SENT_PCT:-98}
	mediaload_args=(-relay-ip 127.0.0.61 -caller-ip 127.0.0.74 -callee-ip 127.0.0.75 -phone-port 26000)
	say "sekisho's media relay (internal/media) in bench/mediaload, as bench/media.sh runs it: per call, two phones (127.0.0.74 and .75) send ${payload}-byte-payload RTP at ${pps} packets/s each through one relay session on 127.0.0.61 (ports $ports, 4 per call), for ${duration} s per step."
	say "Relay, phones and measurement share one process. Clean: loss under $stop_loss %, p99 jitter under $stop_jitter ms, at least $stop_sent % of packets sent. Kamailio relays no media: no row, no ratio."
	say ""
	media_steps
	say ""
	say "| server | max clean calls | loss % | jitter p50 ms | jitter p99 ms | process CPU s per 10k pkt/s | first unclean step |"
	say "|---|---:|---:|---:|---:|---:|---|"
	if ((media_max_calls > 0)); then
		say "$(printf '%s\n' "$media_max_row" | awk -F'|' -v why="${media_stop:-none up to the last step}" '{gsub(/ /, ""); printf "| sekisho | %s | %s | %s | %s | %s | %s |", $2, $5, $9, $10, $12, why}')"
	else
		say "| sekisho | 0 (none clean) | - | - | - | - | ${media_stop:-} |"
	fi
}

# ---- main -------------------------------------------------------------------

say "# sekisho and Kamailio side by side: $scenario"
say ""
machine_info
if [[ $scenario != media ]]; then
	say "| Kamailio | $(kamailio -v 2>/dev/null | awk '/^version:/ {print $3; exit}') ($kam_workers UDP workers, in-memory users, bench/kamailio/kamailio.cfg) |"
fi
say "| command | \`$(for v in DURATION SETTLE RATES FACTOR REGISTER_START CALLS_START FLOOD_REGISTER_START FLOOD_CALLS_START USERS HOLD_MS FLOOD_RATE FLOOD_SOURCES SERVERS P99_MAX_MS FAIL_MAX_PCT MEDIA_CALLS; do [[ -n ${!v:-} ]] && printf '%s="%s" ' "$v" "${!v}"; done)bash bench/run.sh $scenario\` |"

build_sekisho
if [[ $scenario != media ]]; then
	# calls needs only 201 and 202.
	if [[ $scenario == calls ]]; then
		users=0
	fi
	echo "bench: creating $((users + 2)) users..." >&2
	make_users
fi

case $scenario in
register) scenario_register ;;
calls) scenario_calls ;;
flood) scenario_flood ;;
media) scenario_media ;;
all)
	for sc in register calls flood media; do
		sc_t0=$(date +%s)
		"scenario_$sc"
		say ""
		say "($sc took $(($(date +%s) - sc_t0)) s; load average now $(cut -d' ' -f1-3 /proc/loadavg))"
	done
	;;
esac

say ""
say "Load average (1, 5, 15 min) after the run: $(cut -d' ' -f1-3 /proc/loadavg). The run took $(($(date +%s) - run_t0)) s."
echo "results written to ${results#"$repo_root"/}" >&2
