#!/usr/bin/env bash
# Compares the hot-path Go benchmarks of two commits with benchstat, so that a change which costs more CPU per call
# is seen before it lands (issue 16's regression guard).
#
#   scripts/bench-compare.sh                      # HEAD~1 against the work tree
#   scripts/bench-compare.sh main HEAD            # two commits (anything git rev-parse takes)
#   BENCH='BenchmarkSidecarPair' COUNT=10 scripts/bench-compare.sh v1 v2
#
# Each side runs in its own checkout (git worktree under $TMPDIR) with the same flags, interleaved: old, new, old, new…
# so that a change of machine load hits both alike. benchstat (golang.org/x/perf, built once into ~/.cache/bin)
# prints the table. The script exits 1 when any benchmark's cpu-ns/op (the CPU time per call, client and app included)
# or allocs/op is worse by more than THRESHOLD percent (default 5) with p < 0.05, and says which.
set -euo pipefail
cd "$(dirname "$0")/.."

OLD="${1:-HEAD~1}"
NEW="${2:-}" # empty: the work tree as it is
BENCH="${BENCH:-BenchmarkSidecarPair|BenchmarkActorPair}"
COUNT="${COUNT:-8}"
THRESHOLD="${THRESHOLD:-5}"
BENCHTIME="${BENCHTIME:-2000x}"
BENCHSTAT_VERSION="v0.0.0-20260908200009-22c9c6c9d4da"

say() { echo "bench-compare: $*" >&2; }
die() { say "$*"; exit 2; }

benchstat="$HOME/.cache/bin/benchstat"
if [[ ! -x $benchstat ]]; then
	say "building benchstat (golang.org/x/perf@$BENCHSTAT_VERSION) into ~/.cache/bin"
	GOBIN="$HOME/.cache/bin" go install "golang.org/x/perf/cmd/benchstat@$BENCHSTAT_VERSION" ||
		die "could not build benchstat: is the Go module proxy reachable?"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/bench-compare.XXXXXX")
cleanup() {
	for d in "$work"/old "$work"/new; do [[ -d $d ]] && git worktree remove --force "$d" >/dev/null 2>&1 || true; done
	rm -rf "$work"
}
trap cleanup EXIT

checkout() { # rev dir
	local rev
	rev=$(git rev-parse --verify "$1^{commit}") || die "not a commit: $1"
	git worktree add -q --detach "$2" "$rev"
	say "$(basename "$2"): $(git log -1 --format='%h %s' "$rev" | cut -c1-100)"
}
checkout "$OLD" "$work/old"
if [[ -n $NEW ]]; then
	checkout "$NEW" "$work/new"
	newdir="$work/new"
else
	newdir="$PWD"
	say "new: the work tree ($(git describe --always --dirty))"
fi

# Build each side's test binary once, so the runs measure the benchmarks and not the compiler.
for side in old new; do
	dir="$work/old"
	[[ $side == new ]] && dir="$newdir"
	say "building the $side side's test/bench binary"
	(cd "$dir" && go test -c -o "$work/bench-$side.test" ./test/bench) || die "the $side side does not build"
done

say "running $BENCH, $COUNT rounds of $BENCHTIME per side, interleaved (load average: $(cut -d' ' -f1-3 /proc/loadavg))"
for ((i = 1; i <= COUNT; i++)); do
	for side in old new; do
		dir="$work/old"
		[[ $side == new ]] && dir="$newdir"
		(cd "$dir/test/bench" && "$work/bench-$side.test" -test.run '^$' -test.bench "$BENCH" -test.benchmem \
			-test.benchtime "$BENCHTIME" -test.count 1) >>"$work/$side.txt" || die "the $side side's benchmark failed (see above)"
	done
	say "round $i of $COUNT done"
done

"$benchstat" -alpha 0.05 "old=$work/old.txt" "new=$work/new.txt" | tee "$work/table.txt"

# A regression is a row of the cpu-ns/op (benchstat prints it as cpu-sec/op) or allocs/op sections whose delta is +THRESHOLD% or more and significant
# (benchstat prints "~" for a change it cannot tell from noise).
worse=$(awk -v limit="$THRESHOLD" '
	/cpu-(ns|sec)\/op|allocs\/op/ { section = 1; next }
	/^ *│|sec\/op|B\/op/ && !/cpu-|allocs/ { section = 0 }
	section && $0 ~ /\+[0-9.]+%/ {
		match($0, /\+[0-9.]+%/); d = substr($0, RSTART + 1, RLENGTH - 2) + 0
		if (d >= limit) print "  " $0
	}' "$work/table.txt")
if [[ -n $worse ]]; then
	say "worse by ${THRESHOLD}% or more (cpu-ns/op or allocs/op):"
	echo "$worse" >&2
	exit 1
fi
say "no benchmark's cpu-ns/op or allocs/op is worse by ${THRESHOLD}% or more"
