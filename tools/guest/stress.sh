#!/bin/sh
# Stress and fault tests, run by `tools/workbench stress` and `test` on the stress config
# (PROVE_LOCKING, DEBUG_KMEMLEAK, DEBUG_VM, DEBUG_WX, FAULT_INJECTION, LIVEPATCH).
# Usage: stress.sh CYCLES [SEED [HOSTILE]]
#   1. Seven workers at once, each checked every cycle: two create and remove tracing
#      instances (one trampoline each) and two add, enable, disable and remove kprobes
#      at function offsets (an insn slot each, and an optinsn slot where the probe can
#      be optimized; every tenth cycle waits for the optimizer), CYCLES cycles each;
#      one loads samples/ftrace/ftrace-ops.ko (three ops), puts a kprobe event on its
#      function and an instance on its functions, and unloads it with both live
#      (CYCLES / 10 times; every other time the event is defined before the module
#      comes); one takes CPU 1 offline and back online (CYCLES / 10 times); one
#      enables samples/livepatch/livepatch-sample.ko, checks the patched /proc/cmdline
#      and the trampoline of its ops, disables and unloads it (CYCLES / 50 times, at
#      least once).
#   2. The base tree's ftracetest case func_hotplug.
#   3. hostile.sh SEED HOSTILE (default 2000): seeded malformed writes to kprobe_events
#      and set_ftrace_filter, instance mkdir/rmdir races.
#   4. fail_execslot: slot allocation fails; ftrace keeps the ops on ftrace_caller,
#      register_kprobe() fails cleanly, an optprobe stays unoptimized (the series only).
#   5. Afterwards: execslot accounting back to where it was, kmemleak finds nothing,
#      no W+X mapping, lockdep still on. The host checks the console for splats.
# One KTAP result per check (lib.sh); figure lines "# wb-figure stress ..." for the
# host's results/stress.txt.
CYCLES=${1:-200}
SEED=${2:-1}
HOSTILE=${3:-2000}
. "${0%/*}/lib.sh"
F=/sys/kernel/debug/fail_execslot
L=/sys/kernel/debug/kprobes/list
K=$KMEMLEAK
MOD=$(find /lib/modules -name ftrace-ops.ko | head -n1)
LP=$(find /lib/modules -name livepatch-sample.ko | head -n1)
LPS=/sys/kernel/livepatch/livepatch_sample
CPU1=/sys/devices/system/cpu/cpu1/online
# The series' slots, or mainline (a vanilla kernel, or CONFIG_RUST=n): no execslot
# debugfs and no fail_execslot; the accounting is that of kallsyms' trampolines.
series=1
[ "$(wb_param wb_path)" = mainline ] && series=
# Slots and pending frees of the ftrace and kprobes caches, and kallsyms' trampolines.
slots_all() {
	echo "$(slot_total slots '^(ftrace_|kprobe_)') $(slot_total pending '^(ftrace_|kprobe_)')" \
		"$(awk '$3 == "ftrace_trampoline"' /proc/kallsyms | wc -l)"
}

ktap_header
echo "# stress: $(uname -r) cycles=$CYCLES cpus=$(grep -c '^processor' /proc/cpuinfo)"
if [ -n "$series" ]; then
	check "execslot debugfs present" test -r $S
	check "fail_execslot present" test -d $F
fi
check "kmemleak present" test -w $K
check "ftrace-ops.ko present" test -n "$MOD"
check "livepatch-sample.ko present" test -n "$LP"
check "CPU 1 can go offline" test -w $CPU1
# Scan once and forget what kmemleak found so far (boot), so that only new leaks count
# ("clear" only greys objects already reported).
echo scan > $K && echo clear > $K || not_ok "kmemleak: initial scan" "echo scan failed"
# A leak that the hostile filters found: an instance's cached ":mod:" filters.
ktap_sub modcache sh /wb/modcache.sh
# A name that the stress run's livepatch worker found on a trampoline: a module's freed
# init function, whose text the trampoline reused.
ktap_sub modmap sh /wb/modmap.sh

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
# A kprobe site in ftrace-ops.ko's tracee_relevant() past its fentry call (after an
# ENDBR64, +9; without one, +5), so that the kprobe has an instruction slot.
MOD_OFF=
if insmod "$MOD" nr_function_calls=1 persist=1 2>/dev/null; then
	for off in 9 5; do
		if echo "p:modkp/p ftrace_ops:tracee_relevant+$off" >> $T/kprobe_events 2>/dev/null; then
			echo "-:modkp/p" >> $T/kprobe_events
			MOD_OFF=$off
			break
		fi
	done
	rmmod ftrace_ops
fi
check "a kprobe site in ftrace-ops.ko (tracee_relevant+$MOD_OFF)" test -n "$MOD_OFF"
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
# ftrace-ops.ko with its ops, a kprobe event on its function (past the fentry call, so
# with an insn slot) and an instance tracing its functions, unloaded with all three
# live: the kprobe must be [GONE], and removing the event and the instance afterwards
# frees its slot and trampoline. Every other cycle the event is defined before the
# module comes (trace_kprobe registers it when the module loads).
modkp() { echo "p:modkp/p ftrace_ops:tracee_relevant+$MOD_OFF" >> $T/kprobe_events; }
ops_worker() {
	e=0; i=0; d=$T/instances/mod
	while [ $i -lt $((CYCLES / 10)) ]; do
		i=$((i + 1))
		early=$((i % 2))
		{ { [ $early = 0 ] || modkp; } && insmod "$MOD" nr_function_calls=10 \
			nr_ops_relevant=2 nr_ops_irrelevant=1 save_regs=$((i % 2)) persist=1 &&
			{ [ $early = 1 ] || modkp; } && echo 1 > $T/events/modkp/p/enable &&
			mkdir $d && echo ':mod:ftrace_ops' > $d/set_ftrace_filter &&
			echo function > $d/current_tracer && rmmod ftrace_ops && grep -q GONE $L &&
			echo 0 > $T/events/modkp/p/enable && echo "-:modkp/p" >> $T/kprobe_events &&
			echo nop > $d/current_tracer && rmdir $d; } 2>/dev/null ||
			{ e=$((e + 1)); echo "# stress: ops cycle $i failed" > /dev/kmsg
			  rmmod ftrace_ops; echo 0 > $T/events/modkp/p/enable
			  echo "-:modkp/p" >> $T/kprobe_events; echo nop > $d/current_tracer
			  rmdir $d; } 2>/dev/null
	done
	echo "errors=$e cycles=$i" > /tmp/w_ops
}
hotplug_worker() {
	e=0; i=0
	while [ $i -lt $((CYCLES / 10)) ]; do
		i=$((i + 1))
		{ echo 0 > $CPU1 && grep -q 0 $CPU1 && echo 1 > $CPU1 && grep -q 1 $CPU1; } 2>/dev/null ||
			{ e=$((e + 1)); echo 1 > $CPU1; } 2>/dev/null
	done
	echo "errors=$e cycles=$i" > /tmp/w_hotplug
}
# Livepatch: the patch's ops (one per patched function, cmdline_proc_show) gets a
# trampoline, which must be a slot of execslot on the series (kallsyms' trampoline on
# mainline) while the patch is on.
lp_wait() { # CONDITION...: within 60 s
	t=0
	while [ $t -lt 60 ] && ! "$@"; do sleep 1; t=$((t + 1)); done
	"$@"
}
lp_done() { [ "$(cat $LPS/transition 2>/dev/null)" = 0 ]; }
lp_gone() { [ ! -d $LPS ]; }
lp_tramp() {
	a=$(sed -n 's/^cmdline_proc_show .*tramp: \(0x[0-9a-f]*\).*/\1/p' $T/enabled_functions)
	[ -n "$a" ] || return 1
	if [ -n "$series" ]; then
		grep -q "^$a [0-9]* ftrace_trampoline" $SLOTS
	else
		awk -v a="${a#0x}" '$1 ~ a "$" && $3 == "ftrace_trampoline" { f = 1 } END { exit !f }' /proc/kallsyms
	fi
}
# One livepatch cycle; on failure $lp_step names the step that failed.
lp_cycle() {
	lp_step=insmod; insmod "$LP" || return 1
	lp_step=transition; lp_wait lp_done || return 1
	lp_step=cmdline; grep -q 'live patched' /proc/cmdline || return 1
	lp_step=trampoline; lp_tramp || return 1
	lp_step=disable; echo 0 > $LPS/enabled && lp_wait lp_gone || return 1
	lp_step=rmmod; rmmod livepatch_sample || return 1
	lp_step=unpatched; ! grep -q 'live patched' /proc/cmdline
}
lp_worker() {
	e=0; i=0; n=$((CYCLES / 50))
	[ $n -lt 1 ] && n=1
	while [ $i -lt $n ]; do
		i=$((i + 1))
		lp_cycle 2>/dev/null ||
			{ e=$((e + 1))
			  echo "# stress: livepatch cycle $i failed at $lp_step:" \
				"$(grep '^cmdline_proc_show' $T/enabled_functions)" > /dev/kmsg
			  echo 0 > $LPS/enabled; lp_wait lp_gone; rmmod livepatch_sample; } 2>/dev/null
	done
	echo "errors=$e cycles=$i" > /tmp/w_lp
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
hotplug_worker &
lp_worker &
wait
elapsed=$(awk -v s="$start" '{ print $1 - s }' /proc/uptime)
for w in inst1 inst2 kp1 kp2 ops hotplug lp; do
	r=$(cat /tmp/w_$w 2>/dev/null)
	echo "# stress: worker $w: $r"
	figure stress "worker=$w $r"
	want=$CYCLES
	case $w in
	ops | hotplug) want=$((CYCLES / 10)) ;;
	lp) want=$((CYCLES / 50)); [ $want -lt 1 ] && want=1 ;;
	esac
	if [ "$r" = "errors=0 cycles=$want" ]; then
		ok "worker $w: every cycle ok"
	else
		not_ok "worker $w: every cycle ok" "${r:-no result}"
	fi
done
figure stress "workers_seconds=$elapsed seed=$SEED hostile=$HOSTILE"
check "CPU 1 online after the hotplug worker" grep -q 1 $CPU1
check "no livepatch left" sh -c "! lsmod | grep -q livepatch_sample"

# Tracing while a CPU goes away and comes back, as the base tree tests it.
ktap_sub "ftracetest func_hotplug" sh /wb/ftracetest.sh ftrace/func_hotplug.tc
# Seeded malformed writes, with the workers' accounting settled first.
ktap_sub hostile sh /wb/hostile.sh "$SEED" "$HOSTILE"

# Deferred frees (kprobes) are released by a work item after a grace period.
wait_back() {
	t=0
	while [ $t -lt 30 ] && [ "$(slots_all)" != "$base" ]; do
		sleep 1
		t=$((t + 1))
	done
	[ "$(slots_all)" = "$base" ]
}
# The end of every run: kmemleak, W+X, lockdep.
after_stress() {
	if ! kmemleak_scan; then
		not_ok "kmemleak: no leak" "echo scan > $K failed (kmemleak off?)"
	elif grep -q unreferenced $K; then
		not_ok "kmemleak: no leak" "$(kmemleak_report 3)"
		sed 's/^/# /' $K
	else
		ok "kmemleak: no leak"
	fi
	check "no W+X mapping (check_wx_pages)" grep -q SUCCESS /sys/kernel/debug/check_wx_pages
	check "lockdep still on (debug_locks: 1)" grep -q 'debug_locks: *1' /proc/lockdep_stats
}
check "accounting back after the workers and the hostile input (slots, pending, trampolines: $base)" wait_back
figure stress "accounting_base=$(echo $base | tr ' ' /) accounting_end=$(slots_all | tr ' ' /)"

# Faults (the series only). verbose=0: no stack dump per injected failure on the console.
[ -n "$series" ] || { after_stress; ktap_exit; }
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

after_stress
ktap_exit
