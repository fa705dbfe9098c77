#!/usr/bin/env bash
# conformance.sh: runs cases of Dapr 1.18.2's own integration suite (tests/integration/suite/{daprd,actors,scheduler,
# placement,operator,sentry,injector,healthz,ports}/...) against tandemd, one case per process, and fails when a case
# fails twice in a row.
#
#   scripts/conformance.sh                        # the cases in test/conformance/passing.txt (the regression guard)
#   scripts/conformance.sh state pubsub           # whole areas (folders under suite/daprd)
#   scripts/conformance.sh 'daprd/state/http/.*' # or regular expressions over case names
#   scripts/conformance.sh 'actors/.*'            # the other roots (actors, scheduler, placement, operator, sentry,
#                                                 # injector) by expression
#   TANDEM_CONFORMANCE_OURS="placement scheduler" scripts/conformance.sh 'placement/.*'
#                                                 # our cmd/placement, cmd/scheduler in the place of Dapr's
# A line of the list may name our binaries for that case in a second field: "placement/quorum/insecure ours=placement"
# (comma-separated: placement, scheduler, sentry, operator, injector).
#   scripts/conformance.sh --list state           # print the matching cases only
#   scripts/conformance.sh --build                # build Dapr's binaries and the suite only (the e2e actor tests use placement)
#
# The first run copies github.com/dapr/dapr@v1.18.2 (one of our module dependencies) out of the module cache and
# builds Dapr's placement, scheduler, sentry and operator (some cases start them) and the suite's test binary: about
# 10 minutes on 2 cores, cached in TANDEM_CONFORMANCE_CACHE (default /var/tmp/tandem-dapr-suite; it must be readable
# by user nobody, so not under /root). tandemd is built from this checkout with the release flags on every run, plus the
# state_spiffeprobe tag (the suite's probe store, never in a release).
#
# How it runs: the suite's framework takes ports from a fixed base, so each worker gets its own network namespace
# (loopback up, multicast on loopback for mDNS). The suite refuses to run some cases as root, so the test binary runs
# as user nobody. A case that hangs is killed after TANDEM_CONFORMANCE_CASE_TIMEOUT seconds (default 150) with a
# goroutine dump in its log; a failed case is run again (TANDEM_CONFORMANCE_ATTEMPTS runs in all, default 2). Logs go
# to TANDEM_CONFORMANCE_OUT (default a new folder under /tmp, printed first); TANDEM_CONFORMANCE_LIST names another
# list file.
# Needs root, unshare and setpriv (util-linux) and ip (iproute2).
set -uo pipefail
cd "$(dirname "$0")/.."

DAPR_VERSION=1.18.2
TAGS="stablecomponents,state_etcd,crypto_localstorage,middleware_http_routeralias,conversation_echo,state_spiffeprobe"
CACHE="${TANDEM_CONFORMANCE_CACHE:-/var/tmp/tandem-dapr-suite}"
JOBS="${TANDEM_CONFORMANCE_JOBS:-2}"
CASE_TIMEOUT="${TANDEM_CONFORMANCE_CASE_TIMEOUT:-150}"
ATTEMPTS="${TANDEM_CONFORMANCE_ATTEMPTS:-2}"
LIST="${TANDEM_CONFORMANCE_LIST:-test/conformance/passing.txt}"

list_only=0 build_only=0 sel=()
for a in "$@"; do
  case $a in
    --list) list_only=1 ;;
    --build) build_only=1 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) sel+=("$a") ;;
  esac
done

die() { echo "conformance: $*" >&2; exit 2; }
for t in unshare ip setpriv timeout flock; do command -v "$t" >/dev/null || die "needs $t (apt-get install util-linux iproute2)"; done
[[ $(id -u) == 0 ]] || die "needs root: each worker gets its own network namespace and the suite runs as user nobody"

mkdir -p "$CACHE/bin" && chmod 755 "$CACHE" "$CACHE/bin" || die "cannot create $CACHE"
SRC="$CACHE/dapr-$DAPR_VERSION"
if [[ ! -d $SRC/tests/integration ]]; then
  echo "conformance: copying github.com/dapr/dapr@v$DAPR_VERSION out of the module cache" >&2
  dir=$(go mod download -f '{{.Dir}}' "github.com/dapr/dapr@v$DAPR_VERSION" 2>/dev/null) ||
    dir=$(go mod download -json "github.com/dapr/dapr@v$DAPR_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [[ -d $dir ]] || die "cannot find github.com/dapr/dapr@v$DAPR_VERSION in the module cache (go mod download)"
  rm -rf "$SRC.tmp" && cp -r "$dir" "$SRC.tmp" && chmod -R u+w,a+rX "$SRC.tmp" && mv "$SRC.tmp" "$SRC" || die "copy failed"
fi

# all_cases prints every case the suite registers under suite/{daprd,actors,scheduler,placement,operator,sentry,
# injector,healthz,ports}, as "<root>/<folders>/<type>" (suite/helm renders Dapr's chart with helm: not ours).
all_cases() {
  local root="$SRC/tests/integration/suite"
  grep -rEo --include='*.go' --exclude='*_test.go' 'suite\.Register\(new\([A-Za-z0-9_]+\)\)' \
    "$root/daprd" "$root/actors" "$root/scheduler" "$root/placement" "$root/operator" "$root/sentry" "$root/injector" \
    "$root/healthz" "$root/ports" |
    sed -E "s#^$root/(.*)/[^/]+\.go:suite\.Register\(new\(([A-Za-z0-9_]+)\)\)#\1/\2#" | sort -u
}

mapfile -t ALL < <(all_cases)
declare -A CASE_OURS=() # the binaries of ours a case of the list runs with ("ours=a,b" in its second field)
[[ ${#ALL[@]} -gt 0 ]] || die "no cases found under $SRC/tests/integration/suite/daprd"
if [[ ${#sel[@]} -eq 0 ]]; then
  mapfile -t CASES < <(grep -vE '^[[:space:]]*(#|$)' "$LIST" | awk '{print $1}')
  while read -r c f; do
    [[ -z $f ]] && continue
    [[ $f =~ ^ours=[a-z,]+$ ]] || die "$LIST: $c: the second field must be ours=<binaries>, not $f"
    CASE_OURS[$c]=${f#ours=}
  done < <(grep -vE '^[[:space:]]*(#|$)' "$LIST")
  declare -A known=(); for c in "${ALL[@]}"; do known[$c]=1; done
  for c in "${CASES[@]}"; do [[ -n ${known[$c]:-} ]] || die "$LIST names $c, which the suite does not have"; done
else
  CASES=()
  for c in "${ALL[@]}"; do
    area=$(cut -d/ -f2 <<<"$c")
    for s in "${sel[@]}"; do
      if [[ $s != */* && $c == daprd/* && $s == "$area" ]] || [[ $s == */* && $c =~ ^${s}$ ]]; then CASES+=("$c"); break; fi
    done
  done
fi
[[ ${#CASES[@]} -gt 0 ]] || die "no case matches ${sel[*]:-$LIST}"
if [[ $list_only == 1 ]]; then printf '%s\n' "${CASES[@]}"; exit 0; fi

build() { # name, then go build arguments
  local name=$1; shift
  [[ -x $CACHE/bin/$name ]] && return 0
  echo "conformance: building Dapr's $name (cached afterwards)" >&2
  (cd "$SRC" && CGO_ENABLED=0 go build -tags "$TAGS" -ldflags "-X github.com/dapr/dapr/pkg/buildinfo.version=$DAPR_VERSION" \
     -o "$CACHE/bin/$name.tmp" "$@" && mv "$CACHE/bin/$name.tmp" "$CACHE/bin/$name") || die "building $name failed"
}
exec 9>"$CACHE/.build.lock" && flock 9 # one build at a time when several runs start on a cold cache
for b in placement scheduler sentry operator injector; do build "$b" "./cmd/$b"; done
if [[ ! -x $CACHE/integration.test ]]; then
  echo "conformance: compiling the suite's test binary (about 5 minutes, cached afterwards)" >&2
  (cd "$SRC" && go test -c -vet=off -tags=integration -o "$CACHE/integration.test.tmp" ./tests/integration &&
     mv "$CACHE/integration.test.tmp" "$CACHE/integration.test") || die "compiling the suite failed"
fi
exec 9>&-
if [[ $build_only == 1 ]]; then echo "conformance: Dapr's binaries and the suite are built in $CACHE" >&2; exit 0; fi

SIDECAR="$CACHE/bin/tandemd-$$"
echo "conformance: building tandemd (release flags)" >&2
# state_spiffeprobe adds the suite's test-only state.spiffeprobe store, as Dapr's suite builds its daprd with it.
CGO_ENABLED=0 go build -trimpath -tags=grpcnotrace,state_spiffeprobe -ldflags="-s -w" -o "$SIDECAR" ./cmd/tandemd ||
  die "building tandemd failed"
chmod a+rx "$SIDECAR"
OURS=()
wanted=" ${TANDEM_CONFORMANCE_OURS:-} "
for c in "${CASES[@]}"; do
  o=${CASE_OURS[$c]:-}
  for b in ${o//,/ }; do [[ $wanted == *" $b "* ]] || wanted+="$b "; done
done
for b in $wanted; do
  [[ $b =~ ^(placement|scheduler|sentry|operator|injector)$ ]] ||
    die "ours: $b is not one of placement scheduler sentry operator injector"
  echo "conformance: building our $b from this checkout in the place of Dapr's" >&2
  CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o "$CACHE/bin/$b-$$" "./cmd/$b" || die "building cmd/$b failed"
  chmod a+rx "$CACHE/bin/$b-$$"; OURS+=("$CACHE/bin/$b-$$")
done
# The stdio MCP server of the MCPServer cases (Dapr's helper is not in its module): ours.
MCPSTDIO="$CACHE/bin/mcpstdioserver-$$"
CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o "$MCPSTDIO" ./test/apps/mcpstdioserver || die "building test/apps/mcpstdioserver failed"
chmod a+rx "$MCPSTDIO"
trap 'rm -f "$SIDECAR" "$MCPSTDIO" "${OURS[@]}"' EXIT

OUT="${TANDEM_CONFORMANCE_OUT:-$(mktemp -d /tmp/tandem-conformance.XXXXXX)}"
mkdir -p "$OUT" && chmod 777 "$OUT"
echo "conformance: ${#CASES[@]} cases against tandemd, $JOBS at a time; logs in $OUT" >&2

export DAPR_INTEGRATION_DAPRD_PATH="$SIDECAR" DAPR_HOST_IP=127.0.0.1
for b in placement scheduler sentry operator injector; do export "DAPR_INTEGRATION_${b^^}_PATH=$CACHE/bin/$b"; done
for b in ${TANDEM_CONFORMANCE_OURS:-}; do export "DAPR_INTEGRATION_${b^^}_PATH=$CACHE/bin/$b-$$"; done
for b in helmtemplate controllergen; do export "DAPR_INTEGRATION_${b^^}_PATH=/bin/false"; done
export DAPR_INTEGRATION_MCPSTDIOSERVER_PATH="$MCPSTDIO"
RUN_ID=$$
export SRC CACHE OUT CASE_TIMEOUT ATTEMPTS RUN_ID

# run_case runs one case (with our binaries for the names in $2, "a,b") up to ATTEMPTS times and prints
# "PASS|FLAKY|FAIL|SKIP <case>".
run_case() {
  local c=$1 attempt res log b ours=()
  for b in ${2//,/ }; do ours+=("DAPR_INTEGRATION_${b^^}_PATH=$CACHE/bin/$b-$RUN_ID"); done
  for ((attempt = 1; attempt <= ATTEMPTS; attempt++)); do
    log="$OUT/$(tr / _ <<<"$c").$attempt.log"
    (cd "$SRC/tests/integration" && HOME=/tmp env "${ours[@]}" timeout -s QUIT -k 10 "$CASE_TIMEOUT" \
       setpriv --reuid=65534 --regid=65534 --clear-groups \
       "$CACHE/integration.test" -test.v -test.timeout 5m -focus "^${c}\$") >"$log" 2>&1
    if grep -q -- "--- PASS: Test_Integration/${c} (" "$log"; then res=PASS
    elif grep -q -- "--- SKIP: Test_Integration/${c} (" "$log"; then res=SKIP
    else res=FAIL; fi
    [[ $res != FAIL ]] && break
  done
  [[ $res == PASS && $attempt -gt 1 ]] && res=FLAKY
  echo "$res $c"
}
export -f run_case

start=$SECONDS
for ((w = 0; w < JOBS; w++)); do
  for c in "${CASES[@]}"; do printf '%s %s\n' "$c" "${CASE_OURS[$c]:-}"; done |
    awk -v n="$JOBS" -v k="$w" 'NR % n == k' >"$OUT/.worker$w"
  unshare -n bash -c 'ip link set lo up; ip link set lo multicast on; ip route add 224.0.0.0/4 dev lo
    while read -r c ours; do run_case "$c" "$ours"; done <"'"$OUT/.worker$w"'"' &
done | tee "$OUT/results.txt"
wait

pass=$(grep -c '^PASS ' "$OUT/results.txt"); flaky=$(grep -c '^FLAKY ' "$OUT/results.txt")
fail=$(grep -c '^FAIL ' "$OUT/results.txt"); skip=$(grep -c '^SKIP ' "$OUT/results.txt")
# Areas: the first two folders of a case (daprd/state), or the root of a two-part name (healthz/app -> healthz).
for area in $(awk '{n = split($2, p, "/"); print (n > 2 ? p[1] "/" p[2] : p[1])}' "$OUT/results.txt" | sort -u); do
  printf '  %-24s %3d passed, %3d failed\n' "$area" \
    "$(grep -cE "^(PASS|FLAKY) $area/" "$OUT/results.txt")" "$(grep -cE "^FAIL $area/" "$OUT/results.txt")"
done
echo "conformance: $((pass + flaky)) passed ($flaky on the second attempt), $fail failed, $skip skipped in $((SECONDS - start)) s; logs in $OUT"
[[ $fail == 0 ]]
