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
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "test.sh: missing ${need[*]}; run as root or: sudo apt-get install -y ${need[*]}" >&2
    exit 1
  fi
  echo "== installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
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
