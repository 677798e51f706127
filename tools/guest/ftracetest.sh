#!/bin/sh
# Runs the base tree's ftracetest cases named in the arguments (paths relative to
# tools/testing/selftests/ftrace/test.d) with its own KTAP output (-K), as a subtest of
# the calling script (ktap_sub, which names it in KTAP_SUBTEST: the "# Subtest:" line
# goes after ftracetest's header), then prints the tail of the logs of any failed case
# as diagnostic lines. Exit status: ftracetest's.
cd /selftests/ftrace || { echo "# no /selftests/ftrace in the initramfs"; exit 1; }
cases=
for c in "$@"; do cases="$cases test.d/$c"; done
rm -rf /tmp/ftlog
# shellcheck disable=SC2086 # one argument per case
./ftracetest -K -l /tmp/ftlog $cases > /tmp/ftracetest.ktap 2>&1
rc=$?
awk -v n="$KTAP_SUBTEST" 'NR == 1 && n != "" { print; print "# Subtest: " n; next } { print }' \
	/tmp/ftracetest.ktap
if [ $rc != 0 ]; then
	for f in /tmp/ftlog/*; do
		[ -f "$f" ] && tail -n 20 "$f" | sed "s|^|# ${f##*/}: |"
	done
fi
exit $rc
