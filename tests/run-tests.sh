#!/bin/sh
# Run each Check suite named on the command line; fail if any fails.
# BSI_VALGRIND=1 runs each suite under valgrind (and tests/testutil.c wraps
# every bsi the suites start in valgrind too).
set -u
failed=0
for t in "$@"; do
	if [ "${BSI_VALGRIND:-}" = 1 ]; then
		valgrind -q --error-exitcode=99 --leak-check=full \
			--errors-for-leak-kinds=definite \
			--suppressions="$(dirname "$0")/valgrind.supp" "$t" || failed=1
	else
		"$t" || failed=1
	fi
done
exit $failed
