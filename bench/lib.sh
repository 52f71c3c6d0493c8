# lib.sh holds what the bench scripts (register.sh, calls.sh, flood.sh,
# media.sh, run.sh) share: building and starting sekisho, creating
# extensions, running one SIPp load step and turning its files into one row
# of a markdown table, stopping what they started, and media.sh's steps. It is sourced, never
# run; the caller sets `set -euo pipefail` and calls bench_init first.
# Variables flow both ways between this file and its callers (sip_port,
# duration and testdata, for instance), which shellcheck cannot see.
# shellcheck shell=bash disable=SC2034,SC2154

# bench_init NAME sets up the run: paths, a temporary directory removed on
# exit (kept when KEEP_TMP=1), and the results file bench/results/NAME-DATE.md.
bench_init() {
	bench_name=$1
	bench_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
	repo_root=$(cd "$bench_dir/.." && pwd)
	testdata=$bench_dir/testdata
	tmp=$(mktemp -d "${TMPDIR:-/tmp}/sekisho-bench-$bench_name.XXXXXX")
	mkdir -p "$bench_dir/results"
	results=$bench_dir/results/$bench_name-$(date +%Y%m%d-%H%M%S).md
	: >"$results"
	bg_pids=()
	server_pid=
	stop_pids=()
	trap bench_cleanup EXIT
	trap 'exit 130' INT TERM
	clk_tck=$(getconf CLK_TCK)
}

# bench_cleanup stops every process this run started, by its own PID only,
# and removes the temporary directory: first the load generators (bg_pids),
# then the servers (server_pid, and stop_pids for callers with more than one).
bench_cleanup() {
	local pid
	for pid in "${bg_pids[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${stop_pids[@]}" $server_pid; do
		stop_pid "$pid"
	done
	wait 2>/dev/null || true
	if [[ ${KEEP_TMP:-0} == 1 ]]; then
		echo "logs kept in $tmp" >&2
	else
		rm -rf "$tmp"
	fi
}

# stop_pid PID stops one server this run started: SIGTERM, up to 5 s to
# exit, then SIGKILL. Processes it forked (Kamailio's workers), listed by
# PID before the signal, get the same SIGKILL if they outlive it and still
# run the same program.
stop_pid() {
	local pid=$1 kids comm k
	kill -0 "$pid" 2>/dev/null || return 0
	kids=$(ps -o pid= --ppid "$pid" 2>/dev/null || true)
	comm=$(cat "/proc/$pid/comm" 2>/dev/null || true)
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 50); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	for k in $kids; do
		[[ $(cat "/proc/$k/comm" 2>/dev/null) == "$comm" ]] && kill -KILL "$k" 2>/dev/null
	done
	return 0
}

# say prints its arguments as one line, to the terminal and the results file.
say() {
	printf '%s\n' "$*" | tee -a "$results"
}

# need fails unless every named command is installed, and says which
# Debian package provides a missing one.
need() {
	local c pkg
	for c in "$@"; do
		command -v "$c" >/dev/null && continue
		case $c in
		sipp) pkg=sip-tester ;;
		kamailio) pkg=kamailio ;;
		ss) pkg=iproute2 ;;
		awk) pkg=gawk ;;
		go) pkg=golang-go ;;
		ps) pkg=procps ;;
		*) pkg=$c ;;
		esac
		echo "bench: $c is not installed (Debian: apt-get install $pkg)" >&2
		exit 2
	done
}

# machine_info prints what the figures depend on: the machine, its load
# before the run, and the versions under test.
machine_info() {
	local rev
	rev=$(git -C "$repo_root" rev-parse --short HEAD 2>/dev/null || echo "no commit")
	if [[ -n $(git -C "$repo_root" status --porcelain 2>/dev/null | head -1) ]]; then
		rev="$rev (uncommitted changes)"
	fi
	say "| | |"
	say "|---|---|"
	say "| date | $(date -u '+%Y-%m-%d %H:%M:%S UTC') |"
	say "| host | $(uname -srm) |"
	say "| CPU | $(nproc) x $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo) |"
	say "| memory | $(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo) |"
	say "| load average (1, 5, 15 min) | $(cut -d' ' -f1-3 /proc/loadavg) |"
	say "| net.core.rmem_max | $(cat /proc/sys/net/core/rmem_max 2>/dev/null || echo '?') |"
	say "| sekisho | $rev |"
	say "| Go | $(go env GOVERSION) |"
	say "| SIPp | $(sipp -v 2>&1 | awk '/SIPp v/ {sub(/\.$/, "", $2); print $2; exit}') |"
}

# build_sekisho builds the server into $tmp/sekisho.
build_sekisho() {
	if [[ -n ${SEKISHO_BIN:-} ]]; then cp "$SEKISHO_BIN" "$tmp/sekisho"; else (cd "$repo_root" && CGO_ENABLED=0 go build -o "$tmp/sekisho" ./cmd/sekisho); fi
	data=$tmp/data
	mkdir -p "$data"
}

# add_ext NUMBER prints the generated SIP password of a new extension.
add_ext() {
	local out pw
	out=$("$tmp/sekisho" ext add "$1" --data "$data" --json)
	pw=$(printf '%s' "$out" | sed -n 's/.*"password" *: *"\([^"]*\)".*/\1/p')
	if [[ -z $pw ]]; then
		echo "bench: ext add $1: unexpected output: $out" >&2
		exit 1
	fi
	if [[ $pw == *";"* ]]; then
		echo "bench: password for $1 holds ';', which SIPp's CSV cannot carry" >&2
		exit 1
	fi
	printf '%s' "$pw"
}

# port_free PORT [IP] reports whether nothing listens on UDP or TCP PORT:
# on any address, or with IP on that address or the wildcard.
port_free() {
	[[ -z $(ss -Hlnut "sport = :$1" 2>/dev/null | awk -v ip="${2:-}" '
		ip == "" || $5 ~ "^(" ip "|0\\.0\\.0\\.0|\\*|\\[::\\]):"') ]]
}

# start_sekisho starts the server on ${sip_ip:-127.0.0.1}:$sip_port, with
# the data directory $data, the extra flags in the array sekisho_args (if
# set) and the words of $SEKISHO_ARGS (such as "--pprof-listen 127.0.0.1:26060"), and its log in ${server_log:-$tmp/server.log}, and waits until it says
# it is ready, or (at log levels that hide that line) until its UDP port is
# bound; it sets server_pid. --grace 1s keeps the final stop short.
start_sekisho() {
	local ip=${sip_ip:-127.0.0.1} log=${server_log:-$tmp/server.log}
	if ! port_free "$sip_port" "$ip"; then
		echo "bench: port $sip_port is in use; set SIP_PORT" >&2
		exit 1
	fi
	# --source-rate: the benchmark's SIPp plays every phone from one
	# address, far past what one real phone sends; the per-source limit
	# (50/s by default) would measure the guard, not the PBX.
	"$tmp/sekisho" serve --data "$data" \
		--sip-udp "$ip:$sip_port" --sip-tcp "$ip:$sip_port" --sip-tls "" --console "" --vpn-listen "" \
		--source-rate "${SOURCE_RATE:-1000000}" \
		--grace 1s --log-level "${LOG_LEVEL:-info}" ${sekisho_args[@]+"${sekisho_args[@]}"} ${SEKISHO_ARGS:-} >"$log" 2>&1 &
	server_pid=$!
	for _ in $(seq 200); do
		grep -q 'sekisho ready' "$log" && return 0
		if ! port_free "$sip_port" "$ip"; then
			sleep 0.2
			return 0
		fi
		if ! kill -0 "$server_pid" 2>/dev/null; then
			echo "bench: sekisho exited at start:" >&2
			cat "$log" >&2
			exit 1
		fi
		sleep 0.1
	done
	echo "bench: sekisho not ready after 20 s:" >&2
	cat "$log" >&2
	exit 1
}

# cpu_ticks prints the user plus system CPU time of PID in clock ticks. The
# command name in field 2 has no spaces here, so fields can be counted.
cpu_ticks() {
	awk '{print $14 + $15}' "/proc/$1/stat"
}

# peak_rss_mib prints the peak resident set size (VmHWM) of PID in MiB.
peak_rss_mib() {
	awk '/^VmHWM/ {printf "%.0f", $2 / 1024}' "/proc/$1/status"
}

# stat_col FILE COLUMN prints COLUMN of the last row of a SIPp -trace_stat
# file, looked up by its header name.
stat_col() {
	awk -F';' -v col="$2" '
		NR == 1 { for (i = 1; i <= NF; i++) if ($i == col) c = i; next }
		{ last = $c }
		END { print (c && last != "" ? last : 0) }' "$1"
}

# rtt_summary FILE RTD prints "count rate p50 p99" for one response-time
# partition of a SIPp -trace_rtt file: the number of samples, the rate at
# which they completed (per second, first to last), and two percentiles in
# milliseconds (SIPp measures in whole milliseconds).
rtt_summary() {
	[[ -f $1 ]] || set -- /dev/null "$2"
	awk -F';' -v rtd="$2" 'NR > 1 && $3 == rtd {print $1, $2}' "$1" | sort -k2,2n |
		awk '
			{ t[NR] = $1; v[NR] = $2; if (NR == 1 || $1 < t0) t0 = $1; if ($1 > t1) t1 = $1 }
			END {
				n = NR
				if (n == 0) { print "0 0 - -"; exit }
				i50 = int(n * 0.50); if (i50 < n * 0.50) i50++
				i99 = int(n * 0.99); if (i99 < n * 0.99) i99++
				if (i50 < 1) i50 = 1
				if (i99 < 1) i99 = 1
				rate = (n > 1 && t1 > t0) ? (n - 1) * 1000 / (t1 - t0) : 0
				printf "%d %.0f %s %s\n", n, rate, v[i50], v[i99]
			}'
}

# table_header prints the header of the per-step table.
table_header() {
	say ""
	say "| target /s | attempted | ok | failed % | achieved /s | p50 ms | p99 ms | retrans | timeouts | server CPU s per 1k | server CPU % | peak RSS MiB |"
	say "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
}

# run_step RATE SCENARIO RTD LOCAL_IP LOCAL_PORT [SIPP ARGS...] runs one
# bounded SIPp load step against the server at RATE calls per second for
# $duration seconds, then prints its table row. It sets step_fail_pct.
run_step() {
	local rate=$1 scenario=$2 rtd=$3 lip=$4 lport=$5
	shift 5
	local dir=$tmp/step-$rate
	mkdir -p "$dir"
	local count=$((rate * duration))
	local c0 c1 t0 t1 rc=0
	c0=$(cpu_ticks "$server_pid")
	t0=$(date +%s.%N)
	# SIPp writes the -trace_rtt file into its working directory. -timeout
	# bounds the step even if SIPp cannot reach the target rate.
	(cd "$dir" && sipp "${sip_ip:-127.0.0.1}:$sip_port" -sf "$scenario" \
		-r "$rate" -rp 1000 -m "$count" -i "$lip" -p "$lport" \
		-buff_size 4194304 -max_socket 1024 -nostdin \
		-recv_timeout "${RECV_TIMEOUT_MS:-5000}" -timeout "$((duration * 2 + 20))s" \
		-trace_stat -stf "$dir/stat.csv" -fd 1 \
		-trace_rtt -rtt_freq 100 \
		-trace_err -error_file "$dir/errors.log" \
		"$@" >"$dir/screen.log" 2>&1) || rc=$?
	t1=$(date +%s.%N)
	if ! kill -0 "$server_pid" 2>/dev/null; then
		say "sekisho died during the $rate/s step; its log ends:"
		tail -20 "$tmp/server.log" | tee -a "$results"
		exit 1
	fi
	c1=$(cpu_ticks "$server_pid")

	# SIPp exits 0 when every call succeeded and 1 when some failed; any
	# other code means it was stopped by a signal or a fatal error, and
	# the step's figures cover only part of it.
	if ((rc != 0 && rc != 1)); then
		say "(SIPp exited with code $rc during the $rate/s step: stopped early; the row covers only what ran)"
	fi
	local stat=$dir/stat.csv rtts
	rtts=("$dir"/*_rtt.csv)
	if [[ ! -s $stat ]]; then
		say "| $rate | SIPp wrote no statistics (exit $rc); see KEEP_TMP=1 $dir |"
		step_fail_pct=100
		return
	fi
	local created ok failed retrans timeouts
	created=$(stat_col "$stat" 'OutgoingCall(C)')
	ok=$(stat_col "$stat" 'SuccessfulCall(C)')
	failed=$(stat_col "$stat" 'FailedCall(C)')
	retrans=$(stat_col "$stat" 'Retransmissions(C)')
	timeouts=$(($(stat_col "$stat" 'FailedTimeoutOnRecv(C)') + $(stat_col "$stat" 'FailedMaxUDPRetrans(C)')))
	local achieved p50 p99
	read -r _ achieved p50 p99 < <(rtt_summary "${rtts[0]}" "$rtd")
	local wall cpu_s per_k cpu_pct
	wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", b - a}')
	cpu_s=$(awk -v a="$c0" -v b="$c1" -v hz="$clk_tck" 'BEGIN {printf "%.2f", (b - a) / hz}')
	per_k=$(awk -v s="$cpu_s" -v ok="$ok" 'BEGIN {if (ok > 0) printf "%.3f", s * 1000 / ok; else print "-"}')
	cpu_pct=$(awk -v s="$cpu_s" -v w="$wall" 'BEGIN {printf "%.0f", 100 * s / w}')
	step_fail_pct=$(awk -v f="$failed" -v ok="$ok" 'BEGIN {t = f + ok; printf "%.2f", (t > 0 ? 100 * f / t : 100)}')
	say "| $rate | $created | $ok | $step_fail_pct | $achieved | $p50 | $p99 | $retrans | $timeouts | $per_k | $cpu_pct | $(peak_rss_mib "$server_pid") |"
}

# media_steps runs $tmp/mediaload once per call count in $calls_list, each
# for $duration seconds with $pps packets of $payload bytes per phone and the
# relay's ports in $ports (plus the flags in the array mediaload_args, if
# set), and prints one table row per step. It stops after a step that lost
# $stop_loss % or more, had a p99 jitter of $stop_jitter ms or more, or whose
# phones sent less than $stop_sent % of their packets, resting $settle s
# between steps. It sets media_max_calls (the largest clean call count, 0
# if none), media_max_row (that step's row) and media_stop (why it stopped,
# empty if every step was clean).
media_steps() {
	local calls row loss sent_pct p99
	media_max_calls=0 media_max_row='' media_stop=''
	"$tmp/mediaload" -header | while IFS= read -r line; do say "$line"; done
	for calls in $calls_list; do
		# Bounded: the run ends by itself after DURATION plus a short
		# drain; timeout is the backstop.
		row=$(timeout $((duration * 2 + 60)) "$tmp/mediaload" -row -calls "$calls" \
			-duration "${duration}s" -pps "$pps" -payload "$payload" -ports "$ports" \
			${mediaload_args[@]+"${mediaload_args[@]}"}) || {
			say "| $calls | step failed (mediaload exit status $?) | | | | | | | | | |"
			media_stop="$calls calls: mediaload failed"
			break
		}
		say "$row"
		# Columns: 5 loss %, 6 sent of target %, 10 jitter p99 ms.
		read -r loss sent_pct p99 < <(printf '%s\n' "$row" | awk -F'|' '{gsub(/ /, ""); print $5, $6, $10}')
		media_stop=$(awk -v l="$loss" -v s="$sent_pct" -v j="$p99" \
			-v ml="$stop_loss" -v ms="$stop_sent" -v mj="$stop_jitter" 'BEGIN {
				if (l + 0 >= ml + 0) printf "lost %s %% (limit %s %%)", l, ml
				else if (j + 0 >= mj + 0) printf "p99 jitter %s ms (limit %s ms): the machine is saturated", j, mj
				else if (s + 0 < ms + 0) printf "the phones sent only %s %% of their packets (limit %s %%): the machine is saturated", s, ms
			}')
		if [[ -n $media_stop ]]; then
			media_stop="$calls calls: $media_stop"
			break
		fi
		media_max_calls=$calls media_max_row=$row
		sleep "$settle"
	done
}
