#!/bin/sh
# Stress and fault tests, run by `tools/workbench stress` and `test` on the stress config
# (PROVE_LOCKING, DEBUG_KMEMLEAK, DEBUG_VM, DEBUG_WX, FAULT_INJECTION).
# Usage: stress.sh CYCLES
#   1. Five workers at once, CYCLES cycles each: two create and remove tracing instances
#      (one trampoline each), two add, enable, disable and remove kprobes at function
#      offsets (an insn slot each, and an optinsn slot where the probe can be optimized;
#      every tenth cycle waits for the optimizer before removing), one loads and unloads
#      samples/ftrace/ftrace-ops.ko with three ops (CYCLES / 10 times).
#   2. fail_execslot: slot allocation fails; ftrace keeps the ops on ftrace_caller,
#      register_kprobe() fails cleanly, an optprobe stays unoptimized.
#   3. Afterwards: execslot accounting back to where it was, kmemleak finds nothing,
#      no W+X mapping. The host checks the console for splats (lockdep, WARN, BUG).
# One KTAP result per check (lib.sh).
CYCLES=${1:-200}
. "${0%/*}/lib.sh"
F=/sys/kernel/debug/fail_execslot
L=/sys/kernel/debug/kprobes/list
K=/sys/kernel/debug/kmemleak
MOD=$(find /lib/modules -name ftrace-ops.ko | head -n1)
# Slots and pending frees of the ftrace and kprobes caches.
slots_all() { echo "$(slot_total slots '^(ftrace_|kprobe_)') $(slot_total pending '^(ftrace_|kprobe_)')"; }

ktap_header
echo "# stress: $(uname -r) cycles=$CYCLES cpus=$(grep -c '^processor' /proc/cpuinfo)"
check "execslot debugfs present" test -r $S
check "fail_execslot present" test -d $F
check "kmemleak present" test -w $K
check "ftrace-ops.ko present" test -n "$MOD"
# Scan once and forget what kmemleak found so far (boot), so that only new leaks count
# ("clear" only greys objects already reported).
echo scan > $K && echo clear > $K || not_ok "kmemleak: initial scan" "echo scan failed"

# Functions to trace and to probe: quiet ones (not called by the workers themselves).
quiet_functions > /tmp/stress_funcs
# Kprobe sites: +9 or +5 into a function (past the fentry call), 40 of them per worker.
echo > $T/kprobe_events
: > /tmp/kp_sites
while read -r f && [ "$(wc -l < /tmp/kp_sites)" -lt 80 ]; do
	for off in 9 5; do
		if echo "p:kpsel/x $f+$off" >> $T/kprobe_events 2>/dev/null; then
			echo "-:kpsel/x" >> $T/kprobe_events
			echo "$f+$off" >> /tmp/kp_sites
			break
		fi
	done
done < /tmp/stress_funcs
if [ "$(wc -l < /tmp/kp_sites)" = 80 ]; then
	ok "80 kprobe sites found"
else
	not_ok "80 kprobe sites found" "only $(wc -l < /tmp/kp_sites)"
	ktap_exit
fi
# The probes just removed are freed after a grace period: wait for that first.
t=0
while [ "$(slots_all | cut -d' ' -f2)" != 0 ] && [ $t -lt 30 ]; do
	sleep 1
	t=$((t + 1))
done
base=$(slots_all)
tramp_base=$(slot_col ftrace_trampoline slots)

# Workers: each prints "errors=N cycles=N" into /tmp/w_NAME.
inst_worker() { # NAME FUNCTION
	e=0; i=0
	while [ $i -lt "$CYCLES" ]; do
		i=$((i + 1))
		d=$T/instances/$1_$i
		{ mkdir $d && echo "$2" > $d/set_ftrace_filter && echo function > $d/current_tracer &&
			grep -q "^$2 .*tramp:" $T/enabled_functions && echo nop > $d/current_tracer &&
			rmdir $d; } 2>/dev/null || { e=$((e + 1)); rmdir $d 2>/dev/null; }
	done
	echo "errors=$e cycles=$i" > /tmp/w_$1
}
kprobe_worker() { # NAME FIRST_SITE
	e=0; i=0
	sed -n "$2,$(($2 + 39))p" /tmp/kp_sites > /tmp/sites_$1
	while [ $i -lt "$CYCLES" ]; do
		while read -r site && [ $i -lt "$CYCLES" ]; do
			i=$((i + 1))
			# Every tenth cycle, leave the optimizer time to optimize the probe
			# first, so that optimized probes are removed too.
			{ echo "p:$1/p $site" >> $T/kprobe_events && echo 1 > $T/events/$1/p/enable &&
				{ [ $((i % 10)) != 0 ] || sleep 1; } &&
				echo 0 > $T/events/$1/p/enable && echo "-:$1/p" >> $T/kprobe_events; } \
				2>/dev/null || { e=$((e + 1)); echo "-:$1/p" >> $T/kprobe_events; }
		done < /tmp/sites_$1
	done 2>/dev/null
	echo "errors=$e cycles=$i" > /tmp/w_$1
}
ops_worker() {
	e=0; i=0
	while [ $i -lt $((CYCLES / 10)) ]; do
		i=$((i + 1))
		{ insmod "$MOD" nr_function_calls=10 nr_ops_relevant=2 nr_ops_irrelevant=1 \
			save_regs=$((i % 2)) persist=1 && rmmod ftrace_ops; } 2>/dev/null ||
			{ e=$((e + 1)); rmmod ftrace_ops 2>/dev/null; }
	done
	echo "errors=$e cycles=$i" > /tmp/w_ops
}

rm -f /tmp/w_*
f1=$(sed -n 1p /tmp/stress_funcs)
f2=$(sed -n 2p /tmp/stress_funcs)
start=$(cut -d' ' -f1 /proc/uptime)
inst_worker inst1 "$f1" &
inst_worker inst2 "$f2" &
kprobe_worker kp1 1 &
kprobe_worker kp2 41 &
ops_worker &
wait
echo "# stress: workers done in $(awk -v s="$start" '{ print $1 - s }' /proc/uptime) s"
for w in inst1 inst2 kp1 kp2 ops; do
	r=$(cat /tmp/w_$w 2>/dev/null)
	echo "# stress: worker $w: $r"
	want=$CYCLES
	[ $w = ops ] && want=$((CYCLES / 10))
	if [ "$r" = "errors=0 cycles=$want" ]; then
		ok "worker $w: every cycle ok"
	else
		not_ok "worker $w: every cycle ok" "${r:-no result}"
	fi
done

# Deferred frees (kprobes) are released by a work item after a grace period.
wait_back() {
	t=0
	while [ $t -lt 30 ] && [ "$(slots_all)" != "$base" ]; do
		sleep 1
		t=$((t + 1))
	done
	[ "$(slots_all)" = "$base" ]
}
check "accounting back after the workers (slots, pending: $base)" wait_back

# Faults. verbose=0: no stack dump per injected failure on the console.
echo 0 > $F/verbose
fails_tramp=$(slot_col ftrace_trampoline failures)
fails_insn=$(slot_col kprobe_insn_page failures)
echo 100 > $F/probability
echo -1 > $F/times
I=$T/instances/fault
FUNC=vfs_read
if mkdir $I; then
	check "fault: instance filter" sh -c "echo $FUNC > $I/set_ftrace_filter"
	check "fault: function tracer on without a trampoline" \
		sh -c "echo function > $I/current_tracer"
	cat /proc/version > /dev/null
	line=$(grep "^$FUNC " $T/enabled_functions)
	case $line in
	*tramp:*) not_ok "fault: no trampoline when the slot allocation fails" "$line" ;;
	"") not_ok "fault: no trampoline when the slot allocation fails" "$FUNC not enabled" ;;
	*) ok "fault: no trampoline when the slot allocation fails" ;;
	esac
	check "fault: $FUNC still traced (through ftrace_caller)" grep -q " $FUNC <-" $I/trace
	check "fault: failure counted" test "$(slot_col ftrace_trampoline failures)" -gt "$fails_tramp"
	echo nop > $I/current_tracer
	rmdir $I || not_ok "fault: remove instance" "rmdir failed"
else
	not_ok "fault: mkdir instance" "mkdir $I failed"
fi
site=$(sed -n 1p /tmp/kp_sites)
if echo "p:flt/p $site" >> $T/kprobe_events 2>/dev/null; then
	not_ok "fault: kprobe registration fails cleanly" "p:flt/p $site was accepted"
	echo "-:flt/p" >> $T/kprobe_events
else
	ok "fault: kprobe registration fails cleanly"
fi
# kprobes/list shows "func+0x9".
listed=$(echo "$site" | awk -F+ '{ printf "%s+0x%x", $1, $2 }')
check "fault: the failed kprobe is not listed" sh -c "! grep -q '$listed' $L"
check "fault: insn slot failure counted" test "$(slot_col kprobe_insn_page failures)" -gt "$fails_insn"
fails_tramp=$(slot_col ftrace_trampoline failures)
if insmod "$MOD" nr_function_calls=10 nr_ops_relevant=1 persist=1 2>/dev/null; then
	ok "fault: ftrace-ops.ko registers its ops"
	line=$(grep '^tracee_relevant ' $T/enabled_functions)
	case $line in
	*tramp:*) not_ok "fault: ftrace-ops.ko's ops has no trampoline" "$line" ;;
	"") not_ok "fault: ftrace-ops.ko's ops has no trampoline" "tracee_relevant not enabled" ;;
	*) ok "fault: ftrace-ops.ko's ops has no trampoline" ;;
	esac
	check "fault: its trampoline failure counted" \
		test "$(slot_col ftrace_trampoline failures)" -gt "$fails_tramp"
	rmmod ftrace_ops || not_ok "fault: rmmod ftrace_ops" "rmmod failed"
else
	not_ok "fault: ftrace-ops.ko registers its ops" "insmod failed"
fi
# Only the second allocation fails (space: the first 16-byte insn slot passes): the
# kprobe is registered, its optinsn slot is not, and it stays unoptimized. Control
# first: without the fault, the same probe is optimized.
echo 0 > $F/probability
if echo "p:flt/opt vfs_read+9" >> $T/kprobe_events && echo 1 > $T/events/flt/opt/enable; then
	sleep 2
	check "fault control: vfs_read+9 is optimized without the fault" \
		sh -c "grep 'vfs_read+0x9' $L | grep -q OPTIMIZED"
	echo 0 > $T/events/flt/opt/enable
	echo "-:flt/opt" >> $T/kprobe_events
else
	not_ok "fault control: vfs_read+9 is optimized without the fault" "kprobe_events refused it"
fi
check "fault control: accounting back" wait_back
fails_opt=$(slot_col kprobe_optinsn_page failures)
echo 100 > $F/probability
echo 17 > $F/space
echo 1 > $F/times
if echo "p:flt/opt vfs_read+9" >> $T/kprobe_events; then
	echo 1 > $T/events/flt/opt/enable
	sleep 2
	check "fault: kprobe registered although its optinsn slot failed" grep -q 'vfs_read+0x9' $L
	check "fault: that kprobe is not optimized" sh -c "! grep 'vfs_read+0x9' $L | grep -q OPTIMIZED"
	cat /proc/version > /dev/null
	check "fault: that kprobe still fires" sh -c \
		"awk '\$1 == \"opt\" { exit !(\$2 > 0) }' $T/kprobe_profile"
	check "fault: its optinsn slot failure counted" \
		test "$(slot_col kprobe_optinsn_page failures)" -gt "$fails_opt"
	echo 0 > $T/events/flt/opt/enable
	echo "-:flt/opt" >> $T/kprobe_events
else
	not_ok "fault: kprobe registered although its optinsn slot failed" "kprobe_events refused it"
fi
echo 0 > $F/probability
echo 0 > $F/space
check "accounting back after the faults" wait_back
check "trampoline slots as before the stress" test "$(slot_col ftrace_trampoline slots)" = "$tramp_base"

# kmemleak: objects must be at least 5 s old to be reported; scan twice.
sleep 6
if ! { echo scan > $K && echo scan > $K; }; then
	not_ok "kmemleak: no leak" "echo scan > $K failed (kmemleak off?)"
elif grep -q unreferenced $K; then
	not_ok "kmemleak: no leak" "$(grep -c unreferenced $K) objects; $(grep -m3 -A12 unreferenced $K | tr '\n' ' ' | cut -c1-400)"
	sed 's/^/# /' $K
else
	ok "kmemleak: no leak"
fi
check "no W+X mapping (check_wx_pages)" grep -q SUCCESS /sys/kernel/debug/check_wx_pages
ktap_exit
