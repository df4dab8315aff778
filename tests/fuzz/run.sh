#!/bin/sh
# Run each libFuzzer target named on the command line for SECONDS, one after
# the other, from its seed corpus; fail if any of them finds a crash, a
# leak or a timeout (libFuzzer exits non-zero and leaves the input in
# tests/fuzz/findings/NAME/).
#
#   sh tests/fuzz/run.sh BINDIR SECONDS NAME...
#
# The seed corpus tests/fuzz/corpus/NAME is read, never written: every file
# in it (the regression inputs included) is executed first.  New inputs go
# to tests/fuzz/findings/NAME/corpus, so later runs build on earlier ones.
# Each run's log is tests/fuzz/findings/NAME/log; its last lines (coverage,
# executions) are printed.  FUZZ_NICE (default 19) is the nice level.
set -u
# ASan keeps 256 MiB of freed chunks in quarantine by default, spread over
# its size classes, and the pages of each class stay resident: an input
# that grows a Lua string by a few bytes a step through the whole memory
# ceiling (the recipe and configuration limits allow that) took
# fuzz_recipe to 2.0 GiB RSS over 20 runs and fuzz_config past the
# 2 GiB limit.  32 MiB of quarantine: 0.55 GiB for the same runs (64 MiB:
# 0.9 GiB, and fuzz_recipe at 1.0 GiB after 20 s in CI); a use-after-free
# is still caught for the frees of the last 32 MiB.
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=32"
export ASAN_OPTIONS
bindir=$1
seconds=$2
shift 2
here=$(dirname "$0")
failed=""
for t in "$@"; do
	out="$here/findings/$t"
	mkdir -p "$out/corpus" "$here/corpus/$t"
	echo "== fuzz $t for ${seconds}s"
	if nice -n "${FUZZ_NICE:-19}" "$bindir/fuzz_$t" -max_total_time="$seconds" -timeout=10 \
		-rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$out/" \
		"$out/corpus" "$here/corpus/$t" >"$out/log" 2>&1; then
		grep -E '^#[0-9]+[[:space:]]+DONE|^stat::number_of_executed_units|^stat::peak_rss_mb' "$out/log"
	else
		tail -n 60 "$out/log"
		echo "fuzz $t FAILED: see $out/log and the crash-*/leak-*/timeout-* file in $out/" >&2
		failed="$failed $t"
	fi
done
if [ -n "$failed" ]; then
	echo "fuzz: failed:$failed" >&2
	exit 1
fi
