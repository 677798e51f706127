# tools/guest/lib.sh: what the guest scripts share. Sourced, never run:
#	. "${0%/*}/lib.sh"
#
# Its functions' own variables start with _kt_ (sh has no locals): callers keep theirs.
#
# Results are KTAP (the base tree's Documentation/dev-tools/ktap.rst), which the host
# reads with the base tree's tools/testing/kunit/kunit.py parse:
#	KTAP version 1
#	ok 1 instance: filter vfs_read
#	# instance: removed: 'rmdir /sys/kernel/tracing/instances/x' failed
#	not ok 2 instance: removed
# A failure's reason is the diagnostic line just before its result line. No plan line:
# the number of checks depends on the kernel (path, config), and KTAP lets the plan
# go. A script that ktap_sub runs is a subtest: its lines are indented by four spaces,
# start with "# Subtest: NAME" and are followed by one result line, "ok N NAME".
#
# Bench figures are not results: they are KTAP diagnostic lines of one form,
#	# wb-figure KIND key=value ...
# which the host parses in one place.

T=/sys/kernel/tracing
S=/sys/kernel/debug/execslot/stats
# shellcheck disable=SC2034 # used by the scripts that source this file
SLOTS=/sys/kernel/debug/execslot/slots
KTAP_N=0
KTAP_FAILED=0

# KTAP header; under ktap_sub (KTAP_SUBTEST set) also the subtest's name.
ktap_header() {
	echo "KTAP version 1"
	[ -n "$KTAP_SUBTEST" ] && echo "# Subtest: $KTAP_SUBTEST"
	return 0
}

# A '#' in a name would start a KTAP directive.
ktap_name() { echo "$*" | tr '#' '_'; }

ok() {
	KTAP_N=$((KTAP_N + 1))
	echo "ok $KTAP_N $(ktap_name "$1")"
}

not_ok() { # name, why
	KTAP_N=$((KTAP_N + 1))
	KTAP_FAILED=1
	echo "# $(ktap_name "$1"): $2"
	echo "not ok $KTAP_N $(ktap_name "$1")"
}

# check NAME COMMAND...: ok when COMMAND succeeds.
check() {
	_kt_n=$1
	shift
	if "$@"; then ok "$_kt_n"; else not_ok "$_kt_n" "'$*' failed"; fi
}

# ktap_sub NAME COMMAND...: COMMAND's KTAP output as the subtest NAME, passed when
# COMMAND exits 0. COMMAND is another guest script (which calls ktap_header) or a
# program that prints KTAP of its own, such as ftracetest -K.
ktap_sub() {
	_kt_sub=$1
	shift
	{
		KTAP_SUBTEST=$_kt_sub "$@" 2>&1
		echo $? > /tmp/ktap_sub_rc
	} | sed 's/^/    /'
	_kt_rc=$(cat /tmp/ktap_sub_rc)
	if [ "$_kt_rc" = 0 ]; then ok "$_kt_sub"; else not_ok "$_kt_sub" "exit status $_kt_rc"; fi
}

# The script's exit status: 1 if any check failed.
ktap_exit() {
	echo "# totals: $KTAP_N checks, failed=$KTAP_FAILED"
	exit $KTAP_FAILED
}

# figure KIND key=value...: a bench figure line.
figure() {
	_kt_kind=$1
	shift
	echo "# wb-figure $_kt_kind $*"
}

# slot_col CACHE COLUMN: a column of debugfs execslot/stats, found by its name in the
# header line ("cache pages slots bytes failures pending"); 0 when the cache or the
# file is missing (a kernel without the series).
slot_col() {
	[ -r $S ] || { echo 0; return; }
	awk -v c="$1" -v col="$2" '
		$1 == "cache" { for (i = 1; i <= NF; i++) pos[$i] = i; next }
		$1 == c && (col in pos) { v = $pos[col] }
		END { print v + 0 }' $S
}

# slot_total COLUMN CACHE-REGEX: the column summed over the caches that match.
slot_total() {
	[ -r $S ] || { echo 0; return; }
	awk -v col="$1" -v re="$2" '
		$1 == "cache" { for (i = 1; i <= NF; i++) pos[$i] = i; next }
		$1 ~ re && (col in pos) { v += $pos[col] }
		END { print v + 0 }' $S
}

# slot_line KEY: the number after "KEY: " in execslot/stats ("pages: 2 (8192 bytes)",
# "empty: 1"); 0 without the series.
slot_line() {
	[ -r $S ] || { echo 0; return; }
	sed -n "s/^$1: \([0-9]*\).*/\1/p" $S
}

# The path that the host expects the kernel to run (wb_path= on its command line):
# "execslot" (the series' slots), "ftrace" (trampolines in slots, kprobes not yet: the
# middle of the series) or "mainline" (the C paths of CONFIG_RUST=n and CONFIG_EXECSLOT=n).
wb_param() { sed -n "s/.*$1=\([^ ]*\).*/\1/p" /proc/cmdline; }

# Functions that the guest seldom calls, for tracing and probing without slowing it
# down under TCG or disturbing the test itself: no hot path, nothing of tracing's or
# kprobes' own.
quiet_functions() {
	grep -E '^[a-z_][a-z0-9_]*$' $T/available_filter_functions |
		grep -vE 'sched|irq|timer|rcu|lock|spin|tick|clock|idle|apic|mutex|page|kmem|slab|alloc|free|cpu|ring_buffer|trace|ftrace|kprobe|preempt|raw|local|read|write|poll|wake|task|signal|fault|mm|vma|fs|file|dentry|inode|path|mem|copy|user|cache|queue|work|event|probe|syscall|console|print|tty|serial|uart|x64|entry|exit|switch|nmi|smp|percpu|hrtimer|ktime|jiffies|softirq|bh|text_poke|int3|debug|kallsyms|list|kobject|kref|str|find|get|put' |
		sort -u
}

# kmemleak (the stress config): kmemleak_scan waits until what is left now is old enough
# to be reported (5 s), then scans twice; it fails when kmemleak is off.
# kmemleak_report [N] says how many objects kmemleak reports and the start of the first
# N (1 unless given), cut to 400 characters.
KMEMLEAK=/sys/kernel/debug/kmemleak
kmemleak_scan() {
	sleep 6
	echo scan > $KMEMLEAK && echo scan > $KMEMLEAK
}
kmemleak_report() {
	echo "$(grep -c unreferenced $KMEMLEAK) objects;" \
		"$(grep -m"${1:-1}" -A14 unreferenced $KMEMLEAK | tr '\n' ' ' | cut -c1-400)"
}

# A splat in the kernel log since boot: prints its first line, fails if there is none.
splat() {
	dmesg | grep -m1 -E 'WARNING:|BUG:|Oops|Call Trace:|ftrace failed|ftrace faulted|suspected memory leak'
}
