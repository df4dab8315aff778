#!/bin/sh
# The allocation-failure sweep: for every N up to the number of heap
# allocations a small scenario makes, run it with the Nth allocation failing
# and check that bsi ends in a clean error and leaves everything sound.
#
#   tests/allocfail/sweep.sh SAN_BUILD PLAIN_BUILD [--full] [SCENARIO...]
#
# SAN_BUILD/bsi-allocfail is bsi built with ASan+UBSan and the failing
# allocator (tests/allocfail/allocfail.c) linked in; every run is checked by
# LeakSanitizer.  PLAIN_BUILD/bsi with PLAIN_BUILD/allocfail.so preloaded is
# the production build; the sweep measures its counts and, with --full, runs
# every N through it too (no leak checker there: a crash or a wrong outcome).
#
# Scenarios, each on a tiny signed feed (two improvements in one recipe,
# three one-line files; built once with real git and ssh-keygen):
#   sync         bsi sync of an enrolled device (path URL: the fetch child)
#   plan         bsi plan after sync (the recipe sandbox child)
#   apply        bsi apply after sync (two transactions)
#   rollback     bsi rollback of one applied improvement
# For each, BSI_ALLOC_FAIL=N fails the main process's Nth allocation and
# BSI_ALLOC_FAIL_CHILD=N each forked child's Nth (counts are per process;
# see allocfail.c).
#
# Each run passes when:
#   - it ended by exit, never a signal, and no sanitizer wrote a report
#     (LeakSanitizer: a leak; ASan: a bad access; UBSan);
#   - exit status 1 (operational failure: out of memory is one) with a
#     "bsi: " message on stderr; in the child sweep of plan/apply also 4,
#     since the sandbox cannot tell the real allocator failing from a
#     recipe past its memory ceiling, but never "evaluation crashed";
#     or exit 0 with the same stdout as the run without failure (a failure
#     that bsi tolerated must not change what it did);
#   - the device directory equals one of the fingerprints each improvement
#     all-or-nothing allows (neither, first, second, both; nothing else: no
#     stray staging file);
#   - afterwards an ordinary bsi (same build, no failure) repairs nothing
#     by hand: `bsi status` exits 0, and the scenario run again exits 0
#     (for rollback, or 2 "nothing to roll back" when the device already
#     shows it done) and reaches the same device and the same improvement
#     statuses as the run without failure.
# Sanitizer reports that are a library's own (libgit2 1.5.1, OpenSSL 3,
# under their own failed allocation) are counted apart: see classify()
# and library_leak() below, and docs/allocfail.md.
# Without --full, N runs 1..FIRST then every STRIDE-th (env, defaults 100
# and 53), for the main process and for the children.  ALLOCFAIL_ONLY="N..."
# runs just those N (to replay a failure).
set -eu

san=$(cd "${1:?usage: sweep.sh SAN_BUILD PLAIN_BUILD [--full] [SCENARIO...]}" && pwd)
plain=$(cd "${2:?}" && pwd)
shift 2
full=0
if [ "${1:-}" = --full ]; then full=1; shift; fi
scenarios=${*:-sync plan apply rollback}
first=${ALLOCFAIL_FIRST:-100}
stride=${ALLOCFAIL_STRIDE:-53}
src=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/bsi-allocfail-XXXXXX")
keep=${BSI_KEEP_TMP:-}
log=${ALLOCFAIL_LOG:-$PWD/allocfail.log}
: > "$log"
trap '[ -n "$keep" ] || rm -rf "$work"' EXIT

export ASAN_OPTIONS="detect_leaks=1:exitcode=98:abort_on_error=0:detect_odr_violation=0"
export LSAN_OPTIONS="suppressions=$src/tests/allocfail/lsan.supp:print_suppressions=0:exitcode=99"
export UBSAN_OPTIONS="print_stacktrace=1:exitcode=97"
export LC_ALL=C

fp() { (cd "$1" && find . -printf '%p %y %m %s %l\n' | sort && find . -type f -print0 | sort -z | xargs -0 -r sha256sum); }

# ---- the fixture -------------------------------------------------------
fx=$work/fixture
mkdir -p "$fx"
conf=$fx/bsi.conf
printf 'service_manager = "record"\n' > "$conf"
ssh-keygen -q -t ed25519 -N '' -C af@bsi -f "$fx/key"
feed=$fx/feed
git init -q -b main "$feed"
mkdir -p "$feed/.bsi" "$feed/recipes" "$feed/payloads" "$fx/dev0/lib"
printf 'af@bsi namespaces="git" %s\n' "$(cat "$fx/key.pub")" > "$feed/.bsi/signers"
for f in a b c; do
	printf 'old %s\n' "$f" > "$fx/dev0/lib/$f"
	printf 'new %s\n' "$f" > "$feed/payloads/$f"
done
sha() { printf 'sha256:%s' "$(sha256sum < "$1" | cut -d' ' -f1)"; }
repl() { # file
	printf '        change:replace("lib/%s", { from = "%s", to = "%s", payload = "payloads/%s" })\n' \
		"$1" "$(sha "$fx/dev0/lib/$1")" "$(sha "$feed/payloads/$1")" "$1"
}
{
	printf 'return {\n  component = "tiny",\n  improvements = {\n'
	printf '    { id = "tiny-1", summary = "one file", severity = "high", fixes = {},\n'
	printf '      apply = function(change)\n'
	repl a
	printf '        change:restart("svc.a")\n      end },\n'
	printf '    { id = "tiny-2", summary = "two files", severity = "low", fixes = { "CVE-2026-10001" },\n'
	printf '      when = function() return bsi.exists("lib/b") end,\n'
	printf '      apply = function(change)\n'
	repl b
	repl c
	printf '        change:restart("svc.b")\n      end },\n  },\n}\n'
} > "$feed/recipes/tiny.lua"
git -C "$feed" add -A
git -C "$feed" -c user.name=T -c user.email=t@bsi -c gpg.format=ssh \
	-c user.signingKey="$fx/key" commit -q -S -m tiny
intro=$(git -C "$feed" rev-parse HEAD)

# the four device states all-or-nothing allows
mkdir -p "$fx/allowed"
for v in none 1 2 both; do
	cp -a "$fx/dev0" "$fx/dev-$v"
	case $v in 1 | both) cp "$feed/payloads/a" "$fx/dev-$v/lib/a" ;; esac
	case $v in 2 | both) cp "$feed/payloads/b" "$fx/dev-$v/lib/b"
		cp "$feed/payloads/c" "$fx/dev-$v/lib/c" ;; esac
	touch -r "$fx/dev0/lib/a" "$fx/dev-$v/lib/a" "$fx/dev-$v/lib/b" "$fx/dev-$v/lib/c"
	fp "$fx/dev-$v" > "$fx/allowed/$v"
done

# base states: enrolled, synced, applied.  Each is made at $work/run, the
# path every run uses, because the state records its target root's path.
run_plain() { # args...
	"$plain/bsi" --root "$work/run/dev" --state "$work/run/st" --config "$conf" "$@"
}
save_base() { # name
	cp -a "$work/run/st" "$fx/base/st-$1"
	cp -a "$work/run/dev" "$fx/base/dev-$1"
}
mkdir -p "$fx/base" "$work/run"
cp -a "$fx/dev0" "$work/run/dev"
run_plain -q enroll "$feed" --introduction "$intro" --signer "$(cat "$fx/key.pub")"
save_base enrolled
run_plain -q sync
save_base synced
run_plain -q apply
save_base applied

# scenario: base state, command, device state that the full run reaches
scenario() {
	case $1 in
	sync) base=enrolled cmd=sync ;;
	plan) base=synced cmd=plan ;;
	apply) base=synced cmd=apply ;;
	rollback) base=applied cmd="rollback tiny-2" ;;
	*) echo "unknown scenario $1" >&2; exit 2 ;;
	esac
}

# fresh copies of a base state into $work/run
fresh() {
	rm -rf "$work/run"
	mkdir -p "$work/run"
	cp -a "$fx/base/st-$base" "$work/run/st"
	cp -a "$fx/base/dev-$base" "$work/run/dev"
}

# run BIN [ENV...]: the scenario's command on the fresh copy; sets rc
runit() {
	bin=$1
	shift
	# shellcheck disable=SC2086
	if env "$@" "$bin" --root "$work/run/dev" --state "$work/run/st" --config "$conf" $cmd \
		> "$work/run/out" 2> "$work/run/err"; then rc=0; else rc=$?; fi
}

# counts BIN PRELOAD: allocations of the main process and the largest child
counts() {
	fresh
	rm -f "$work/count"
	if [ -n "$2" ]; then runit "$1" BSI_ALLOC_COUNT="$work/count" LD_PRELOAD="$2"
	else runit "$1" BSI_ALLOC_COUNT="$work/count"; fi
	[ "$rc" = 0 ] || { echo "scenario $s fails without injected failure:"; cat "$work/run/err"; exit 1; }
	nmain=$(awk '$1 == "main" { print $2 }' "$work/count")
	nchild=$(awk 'BEGIN { m = 0 } $1 == "child" && $2 > m { m = $2 } END { print m }' "$work/count")
}

failures=0
fail() { # message
	failures=$((failures + 1))
	bad=$((bad + 1))
	printf 'FAIL %s %s %s=%s: %s\n' "$s" "$label" "$var" "$n" "$1"
	# the crash site, the first bsi frame, the message
	{ grep -m1 '#0 ' "$work/run/err"; grep -m1 ' host/' "$work/run/err"
	  grep -m1 '^bsi: ' "$work/run/err"; } | sed 's/^ */    | /'
	{ printf '== %s %s %s=%s: %s\n' "$s" "$label" "$var" "$n" "$1"; cat "$work/run/err"; } >> "$log"
	if [ -n "$keep" ]; then
		cp -a "$work/run" "$work/fail-$s-$var-$n"
	fi
}

# innermost frame of a sanitizer stack that is neither the sanitizer's nor
# this shim's, from stdin
inner() { grep '^ *#[0-9]* ' | grep -v 'libsanitizer\|allocfail\.c\|libasan\|libubsan' | head -1; }
# whether a frame is bsi's own code
is_bsi() { printf '%s' "$1" | grep -q ' host/\| plugins/\|bsi-allocfail+'; }

# The first bsi frame of a stack on stdin, without its number and address.
bsi_caller() { grep '^ *#[0-9]* ' | grep ' host/\| plugins/' | head -1 | sed 's/^ *#[0-9]* 0x[0-9a-f]* //'; }

# A leak is the library's when the allocation that failed was made inside a
# library, and every leaked block was allocated inside a library during the
# very call (same bsi call site) that then failed: a call that fails hands
# its caller nothing to free.  (libgit2 1.5.1 leaks a half-built object
# database that way; OpenSSL 3 a half-fetched digest.)  A block from an
# earlier call that bsi forgot to free has another call site and fails.
library_leak() {
	sed -n '/^allocfail: this allocation fails/,/^$/p' "$work/run/err" > "$work/run/astack"
	asite=$(inner < "$work/run/astack")
	acall=$(bsi_caller < "$work/run/astack")
	[ -n "$asite" ] && [ -n "$acall" ] && ! is_bsi "$asite" || return 1
	awk -v dir="$work/run" '/^(Direct|Indirect) leak of/ { n++ } n && /^ *#[0-9]+ / { print > (dir "/leak." n) }' \
		"$work/run/err"
	set -- "$work/run"/leak.*
	[ -e "$1" ] || return 1
	for blk; do
		[ "$(bsi_caller < "$blk")" = "$acall" ] || { rm -f "$work/run"/leak.*; return 1; }
		is_bsi "$(inner < "$blk")" && { rm -f "$work/run"/leak.*; return 1; }
	done
	rm -f "$work/run"/leak.*
	return 0
}

# A sanitizer report.  Leaks and UBSan reports fail.  A crash fails unless
# both the allocation that failed and the crash site are a library's
# (libgit2 1.5.1 mishandles its own allocation failures in several places):
# then bsi had no part in it, the run is counted as a library crash and
# logged, and the device and recovery checks still apply.  The run is
# repeated with BSI_ALLOC_TRACE=1 to learn where the allocation was.
# Returns 0 to go on with the checks, 1 when the run failed.
classify() { # bin preload
	if grep -q 'runtime error:' "$work/run/err"; then
		fail "UBSan report (exit $rc)"
		return 1
	fi
	if grep -q 'LeakSanitizer' "$work/run/err"; then
		# again with full stacks (libgit2 has no frame pointers; OpenSSL's
		# own initialisation alone is 25 frames deep, past the default 30
		# that would cut off bsi's call) and the stack of the failing
		# allocation
		fresh
		ASAN_OPTIONS="$ASAN_OPTIONS:fast_unwind_on_malloc=0:malloc_context_size=128" \
			LSAN_OPTIONS="$LSAN_OPTIONS:exitcode=0" \
			runit "$1" "$var=$n" BSI_ALLOC_TRACE=1 ${2:+LD_PRELOAD="$2"}
		if library_leak; then
			libleak=$((libleak + 1))
			{ printf '== %s %s %s=%s: library leak (not counted as a failure)\n' \
				"$s" "$label" "$var" "$n"; cat "$work/run/err"; } >> "$log"
			return 0
		fi
		fail "leak (exit $rc)"
		return 1
	fi
	cp "$work/run/err" "$work/run/err1"
	fresh
	if [ -n "$2" ]; then runit "$1" "$var=$n" BSI_ALLOC_TRACE=1 LD_PRELOAD="$2"
	else runit "$1" "$var=$n" BSI_ALLOC_TRACE=1; fi
	asite=$(sed -n '/^allocfail: this allocation fails/,/^$/p' "$work/run/err" | inner)
	csite=$(sed -n '/ERROR: AddressSanitizer\|CHECK failed/,$p' "$work/run/err" | inner)
	if [ -n "$asite" ] && [ -n "$csite" ] && ! is_bsi "$asite" && ! is_bsi "$csite"; then
		libcrash=$((libcrash + 1)) lib=1
		{ printf '== %s %s %s=%s: library crash (not counted as a failure)\n' \
			"$s" "$label" "$var" "$n"; cat "$work/run/err"; } >> "$log"
		# the checks below look at the traced run
		return 0
	fi
	fail "sanitizer report (exit $rc); failing allocation at: ${asite:-?}"
	return 1
}

# check one run of the scenario with VAR=N
check_run() { # bin preload
	fresh
	if [ -n "$2" ]; then runit "$1" "$var=$n" LD_PRELOAD="$2"; else runit "$1" "$var=$n"; fi
	runs=$((runs + 1)) lib=0
	if grep -q 'Sanitizer\|runtime error:' "$work/run/err"; then
		classify "$1" "$2" || return 0
	fi
	if grep -q 'evaluation crashed' "$work/run/err"; then
		fail "the sandbox child crashed (exit $rc)"
		return
	fi
	# a library crash in the main process leaves no exit status to judge
	[ "$lib" = 1 ] && [ "$var" = BSI_ALLOC_FAIL ] && rc=lib
	case $rc in
	lib) ;;
	0)
		if ! cmp -s "$work/run/out" "$work/expect.out"; then
			fail "exit 0 but stdout differs from the run without failure"
			return
		fi ;;
	1) ;;
	4) [ "$var" = BSI_ALLOC_FAIL_CHILD ] && [ "$s" != sync ] ||
		{ fail "exit 4 (recipe error) for an allocation failure"; return; } ;;
	*) fail "exit status $rc"; return ;;
	esac
	if [ "$rc" != 0 ] && [ "$rc" != lib ] && ! grep -q '^bsi: ' "$work/run/err"; then
		fail "exit $rc without a \"bsi: \" message"
		return
	fi
	fpd=$(fp "$work/run/dev")
	ok=0
	for v in none 1 2 both; do
		[ "$fpd" = "$(cat "$fx/allowed/$v")" ] && ok=1
	done
	[ $ok = 1 ] || { fail "device is in a state all-or-nothing does not allow"; return; }
	# recovery, with the same build and no failure
	if ! "$1" --root "$work/run/dev" --state "$work/run/st" --config "$conf" status \
		> /dev/null 2> "$work/run/err2"; then
		cat "$work/run/err2" >> "$work/run/err"
		fail "bsi status fails after the failed run"
		return
	fi
	done_before=0
	[ "$(fp "$work/run/dev")" = "$expect_fp" ] && done_before=1
	runit "$1"
	# A rollback that had already happened (the failure came after its
	# commit point, or was tolerated) cannot happen twice: that, and only
	# that, is exit 2 with this message.
	if [ "$rc" = 2 ] && [ "$s" = rollback ] && [ "$done_before" = 1 ] &&
		grep -q 'is rolled-back, not applied: nothing to roll back' "$work/run/err"; then
		rc=0
	fi
	if [ "$rc" != 0 ]; then
		fail "the scenario run again without failure exits $rc"
		return
	fi
	if [ "$(fp "$work/run/dev")" != "$expect_fp" ]; then
		fail "the scenario run again does not reach the device of an unfailed run"
		return
	fi
	if [ "$(status_lines "$1")" != "$expect_status" ]; then
		fail "after the scenario run again, bsi status differs from an unfailed run's"
		return
	fi
}

# the improvements part of bsi status (no times)
status_lines() { "$1" --root "$work/run/dev" --state "$work/run/st" --config "$conf" status |
	grep '^  '; }

sweep() { # label bin preload var total
	label=$1 bin=$2 pre=$3 var=$4 total=$5
	bad=0 runs=0 libcrash=0 libleak=0
	start=$(date +%s)
	if [ -n "${ALLOCFAIL_ONLY:-}" ]; then
		for n in $ALLOCFAIL_ONLY; do
			[ "$n" -le "$total" ] && check_run "$bin" "$pre"
		done
	else
		n=1
		while [ "$n" -le "$total" ]; do
			check_run "$bin" "$pre"
			if [ "$full" = 1 ] || [ "$n" -lt "$first" ]; then
				n=$((n + 1))
			else
				n=$((n + stride))
			fi
		done
	fi
	printf '%-9s %-6s %-6s %8s %6s %5s %8s %7s %6ss\n' "$s" "$label" \
		"$(echo "$var" | sed 's/BSI_ALLOC_FAIL_CHILD/child/; s/BSI_ALLOC_FAIL/main/')" \
		"$total" "$runs" "$bad" "$libcrash" "$libleak" "$(($(date +%s) - start))" >> "$work/summary"
}

printf '%-9s %-6s %-6s %8s %6s %5s %8s %7s %7s\n' scenario build proc allocs runs fail libcrash libleak time > "$work/summary"
for s in $scenarios; do
	scenario "$s"
	# what the run without failure prints and leaves
	fresh
	runit "$san/bsi-allocfail"
	cp "$work/run/out" "$work/expect.out"
	expect_fp=$(fp "$work/run/dev")
	expect_status=$(status_lines "$san/bsi-allocfail")
	counts "$san/bsi-allocfail" ""
	sm=$nmain sc=$nchild
	counts "$plain/bsi" "$plain/allocfail.so"
	pm=$nmain pc=$nchild
	echo "$s: sanitizer build $sm allocations (children up to $sc); plain build $pm (children up to $pc)"
	sweep asan "$san/bsi-allocfail" "" BSI_ALLOC_FAIL "$sm"
	[ "$sc" -gt 0 ] && sweep asan "$san/bsi-allocfail" "" BSI_ALLOC_FAIL_CHILD "$sc"
	if [ "$full" = 1 ]; then
		sweep plain "$plain/bsi" "$plain/allocfail.so" BSI_ALLOC_FAIL "$pm"
		[ "$pc" -gt 0 ] && sweep plain "$plain/bsi" "$plain/allocfail.so" BSI_ALLOC_FAIL_CHILD "$pc"
	fi
done
echo
cat "$work/summary"
if [ "$failures" -gt 0 ]; then
	echo "allocfail: $failures failing run(s)"
	exit 1
fi
echo "allocfail: all runs clean"
