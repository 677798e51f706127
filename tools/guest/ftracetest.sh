#!/bin/sh
# Runs the base tree's ftracetest cases named in the arguments (paths relative to
# tools/testing/selftests/ftrace/test.d), one at a time, and prints
# "WB-TEST PASS ftracetest: <case>" or "WB-TEST FAIL ftracetest: <case> | <result>".
# UNSUPPORTED and UNRESOLVED count as failures: every case listed is expected to run.
cd /selftests/ftrace || { echo "WB-TEST FAIL ftracetest: present | no /selftests/ftrace"; exit 1; }
failed=0
for c in "$@"; do
	rm -rf /tmp/ftlog
	./ftracetest -l /tmp/ftlog "test.d/$c" > /tmp/ftout 2>&1
	res=$(sed -n 's/^\[[0-9]*\] .*\[\([A-Z]*\)\]$/\1/p' /tmp/ftout | head -n1)
	if [ "$res" = PASS ]; then
		echo "WB-TEST PASS ftracetest: $c"
	else
		echo "WB-TEST FAIL ftracetest: $c | ${res:-no result}"
		cat /tmp/ftlog/* 2>/dev/null | tail -n 30 | sed 's/^/    log: /'
		failed=1
	fi
done
exit $failed
