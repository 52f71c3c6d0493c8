#!/usr/bin/env bash
# media.sh measures how many calls' audio sekisho's media relay carries on
# this machine. It builds bench/mediaload and runs it once per call count in
# $CALLS: each run opens that many relay sessions in-process on 127.0.0.1
# and has two fake phones per call (127.0.0.2 and 127.0.0.3) send G.711
# RTP through them both ways (172-byte packets every 20 ms) for $DURATION
# seconds. It stops stepping up after a step that loses $STOP_LOSS_PCT % or
# more, and also after one that shows the machine saturated before any
# loss: p99 jitter of $STOP_JITTER_MS ms or more, or phones that could not
# send $STOP_SENT_PCT % of the packets their pacing asked for. One markdown
# table row is printed per step; the report also goes to
# bench/results/media-<date>.md.
#
# Environment (defaults in brackets):
#   CALLS ["50 100 200 400 800"]  concurrent calls, one step each
#   DURATION [10]         seconds of RTP per step
#   PPS [50]              packets per second per phone
#   PAYLOAD [160]         RTP payload bytes
#   PORTS [20000-29999]   relay port range on 127.0.0.1 (4 ports per call)
#   STOP_LOSS_PCT [0.1]   stop stepping up once a step loses this much
#   STOP_JITTER_MS [20]   ... or its p99 jitter reaches this
#   STOP_SENT_PCT [98]    ... or the phones sent less than this % of the target
#   SETTLE [2]            seconds of rest between steps
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_init media
need go awk

calls_list=${CALLS:-50 100 200 400 800}
duration=${DURATION:-10}
pps=${PPS:-50}
payload=${PAYLOAD:-160}
ports=${PORTS:-20000-29999}
stop_loss=${STOP_LOSS_PCT:-0.1}
stop_jitter=${STOP_JITTER_MS:-20}
stop_sent=${STOP_SENT_PCT:-98}
settle=${SETTLE:-2}

(cd "$repo_root" && go build -o "$tmp/mediaload" ./bench/mediaload)

say "# sekisho media relay benchmark"
say ""
machine_info
say ""
say "Each call: two phones send ${payload}-byte-payload RTP at ${pps} packets/s each, through one relay session, for ${duration} s per step."
say "Relay, phones and measurement share one process, so the CPU figures include the phones' sending and receiving."
say ""
media_steps
if [[ -n $media_stop ]]; then
	say ""
	say "Stopped after $media_stop."
fi
say ""
say "Report written to ${results#"$repo_root"/}"
