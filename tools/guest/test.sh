#!/bin/sh
# Guest checks run by `tools/workbench test`: one KTAP result per check (lib.sh).
. "${0%/*}/lib.sh"
FUNC=vfs_read

ktap_header
echo "# $(uname -r) $(cat /proc/cmdline)"
check "CPUs: two online" test "$(grep -c '^processor' /proc/cpuinfo)" = 2
# wb_mitigation=FILE:WORD: the CPU vulnerability FILE reports a mitigation with WORD.
for m in $(sed -n 's/.*wb_mitigation=\([^ ]*\).*/\1/p' /proc/cmdline); do
	v=/sys/devices/system/cpu/vulnerabilities/${m%%:*}
	echo "# $v: $(cat $v 2>&1)"
	check "guest: ${m%%:*} mitigation ${m#*:} in force" grep -q "${m#*:}" $v
done

# 1. The function tracer in a new instance, filtered to one function: the instance's
#    ops is the only user of that call site, so ftrace gives it its own trampoline.
I=$T/instances/wbsmoke
tramp_slots() { slot_col ftrace_trampoline slots; }
slot_tramps=
grep -q ' x86_ftrace_tramp_create$' /proc/kallsyms && slot_tramps=1
[ -n "$slot_tramps" ] && slots_before=$(tramp_slots)
# The path the host expects from the kernel's config (wb_path= on the command line):
# "execslot", the series' slot trampolines and kprobes slots; "ftrace", the trampolines
# only (the series up to the patch that moves kprobes); or "mainline", the C paths that
# CONFIG_RUST=n and CONFIG_EXECSLOT=n keep (a page per trampoline).
want=$(wb_param wb_path)
case "$want" in
execslot|ftrace)
	check "path: execslot builds the trampolines" test -n "$slot_tramps"
	check "path: execslot debugfs present" test -d /sys/kernel/debug/execslot ;;
mainline)
	check "path: mainline, no execslot trampoline builder" test -z "$slot_tramps"
	check "path: mainline, no execslot allocator" \
		sh -c "! grep -q ' execslot_alloc_locked\$' /proc/kallsyms"
	check "path: mainline, no execslot debugfs" test ! -e /sys/kernel/debug/execslot ;;
*)
	not_ok "path: wb_path= on the command line" "got '$want', want execslot, ftrace or mainline" ;;
esac
if mkdir $I; then
	check "instance: filter $FUNC" sh -c "echo $FUNC > $I/set_ftrace_filter"
	check "instance: function tracer on" sh -c "echo function > $I/current_tracer"
	cat /proc/version /proc/cmdline >/dev/null
	# enabled_functions: "vfs_read (1)   tramp: 0xffffffffa000b000 (function_trace_call+0x0/0x130) ->..."
	tramp=$(grep "^$FUNC " $T/enabled_functions | sed -n 's/.*tramp: 0x\([0-9a-f]*\).*/\1/p')
	check "instance: $FUNC calls a dynamic trampoline" test -n "$tramp"
	check "instance: the trampoline is in kallsyms" grep -q "^$tramp t ftrace_trampoline" /proc/kallsyms
	# Mainline gives each trampoline an execmem page of its own, starting at its start.
	[ "$want" = mainline ] && check "instance: the trampoline starts a page (mainline)" \
		sh -c "case $tramp in *000) ;; *) exit 1 ;; esac"
	if [ -n "$slot_tramps" ]; then
		check "instance: the trampoline takes one more execslot slot" \
			test "$(tramp_slots)" = $((slots_before + 1))
		check "instance: the trampoline is a live execslot slot" \
			grep -q "^0x$tramp [0-9]* ftrace_trampoline\$" $SLOTS
	fi
	# Stop recording before reading: reading the buffer calls vfs_read too.
	check "instance: tracing off" sh -c "echo 0 > $I/tracing_on"
	cat $I/trace > /tmp/trace
	check "instance: $FUNC traced" grep -q " $FUNC <-" /tmp/trace
	check "instance: only $FUNC traced" sh -c "! grep -v '^#' /tmp/trace | grep -qv ' $FUNC <-'"
	check "instance: tracer off" sh -c "echo nop > $I/current_tracer"
	check "instance: removed" rmdir $I
	check "instance: $FUNC no longer traced" sh -c "! grep -q '^$FUNC ' $T/enabled_functions"
	[ -n "$slot_tramps" ] && check "instance: its trampoline slot is released" \
		test "$(tramp_slots)" = "$slots_before"
else
	not_ok "instance: create" "mkdir $I failed"
fi

# 1b. Other single users of a call site get a trampoline too: kprobe-on-ftrace (the
#     kprobes ftrace_ops, with SAVE_REGS: a copy of ftrace_regs_caller) and an fprobe.
tramp_user() { # name, function, command that makes the user, command that removes it
	name=$1; func=$2; shift 2
	before=$(tramp_slots 2>/dev/null)
	if ! sh -c "$1"; then
		not_ok "$name: create" "'$1' failed"
		return
	fi
	t=$(grep "^$func " $T/enabled_functions | sed -n 's/.*tramp: 0x\([0-9a-f]*\).*/\1/p')
	check "$name: $func calls a dynamic trampoline" test -n "$t"
	check "$name: the trampoline is in kallsyms" grep -q "^$t t ftrace_trampoline" /proc/kallsyms
	# debugfs execslot/slots: "0xffffffffa0000d00 208 ftrace_trampoline"
	[ -n "$slot_tramps" ] && check "$name: the trampoline is a live execslot slot" \
		grep -q "^0x$t [0-9]* ftrace_trampoline\$" $SLOTS
	# Static ops (kprobes' and fprobe's) keep their trampoline, and may have one from
	# the boot tests already; a dynamic ops gets a new slot and gives it back.
	added=$(( $(tramp_slots) - before ))
	cat /proc/version > /dev/null
	check "$name: remove" sh -c "$2"
	check "$name: $func no longer traced" sh -c "! grep -q '^$func ' $T/enabled_functions"
	[ -n "$slot_tramps" ] && [ $added = 1 ] &&
		check "$name: its trampoline slot is released" test "$(tramp_slots)" = "$before"
}
tramp_user "kprobe on ftrace" vfs_write \
	"echo 'p:wbkof vfs_write' >> $T/kprobe_events && echo 1 > $T/events/kprobes/wbkof/enable" \
	"echo 0 > $T/events/kprobes/wbkof/enable && echo '-:wbkof' >> $T/kprobe_events"
tramp_user "fprobe" vfs_write \
	"echo 'f:wbfp vfs_write' >> $T/dynamic_events && echo 1 > $T/events/fprobes/wbfp/enable" \
	"echo 0 > $T/events/fprobes/wbfp/enable && echo '-:wbfp' >> $T/dynamic_events"
# samples/ftrace/ftrace-ops.ko: raw ftrace_ops, with and without SAVE_REGS; check_count
# makes it WARN if the tracer is not called once per call.
for regs in 0 1; do
	tramp_user "ftrace-ops sample (save_regs=$regs)" tracee_relevant \
		"modprobe ftrace-ops persist=1 check_count=1 nr_function_calls=1000 save_regs=$regs" \
		"rmmod ftrace_ops"
done
echo > $T/trace

# 2. A kprobe event at an offset inside a function (past the fentry site, so a real
#    kprobe with an insn slot rather than kprobe-on-ftrace), hit and removed.
off=
for o in 9 5 8 4; do
	if echo "p:wbsmoke $FUNC+$o" >> $T/kprobe_events 2>/dev/null; then off=$o; break; fi
done
if [ -n "$off" ]; then
	ok "kprobe: add $FUNC+$off"
	check "kprobe: enable" sh -c "echo 1 > $T/events/kprobes/wbsmoke/enable"
	# debugfs kprobes/list: "ffffffff811dd869  k  vfs_read+0x9    [OPTIMIZED]"
	hex=$(printf '%x' "$off")
	check "kprobe: listed, not on ftrace" sh -c "grep ' $FUNC+0x$hex ' /sys/kernel/debug/kprobes/list | grep -vq FTRACE"
	# Its instruction slot: a kallsyms kprobe_insn_page entry on every path, a live
	# execslot slot of that cache on the series' full path.
	check "kprobe: instruction slot in kallsyms" grep -q ' t kprobe_insn_page' /proc/kallsyms
	[ "$want" = execslot ] && check "kprobe: instruction slot is a live execslot slot" \
		grep -q ' kprobe_insn_page$' $SLOTS
	cat /proc/version >/dev/null
	check "kprobe: disable" sh -c "echo 0 > $T/events/kprobes/wbsmoke/enable"
	check "kprobe: hit" grep -q 'wbsmoke:' $T/trace
	# kprobe_profile: "  wbsmoke    <hits>    <misses>"
	check "kprobe: hit counted" sh -c "awk '\$1 == \"wbsmoke\" { found = 1; exit !(\$2 > 0) } END { if (!found) exit 1 }' $T/kprobe_profile"
	check "kprobe: remove" sh -c "echo '-:wbsmoke' >> $T/kprobe_events"
	check "kprobe: none left" sh -c "! grep -q . $T/kprobe_events"
	echo > $T/trace
else
	not_ok "kprobe: add $FUNC+offset" "no offset among 9 5 8 4 was accepted"
fi

# 2b. perf's view of a kprobe's instruction slot (PERF_RECORD_KSYMBOL, read from a
#     side-band ring buffer by /usr/bin/ksymwatch): registered with the probe, and
#     unregistered only when the slot really goes. An unregister event while the slot is
#     still live (in execslot/slots) would have perf forget code that can still run.
if [ "$want" = execslot ] && [ -n "$off" ]; then
	ksymwatch kprobe_insn_page $SLOTS \
		"echo 'p:wbksym $FUNC+$off' >> $T/kprobe_events && echo 1 > $T/events/kprobes/wbksym/enable && cat /proc/version >/dev/null" \
		"echo 0 > $T/events/kprobes/wbksym/enable && echo '-:wbksym' >> $T/kprobe_events" \
		20 > /tmp/ksym 2>&1
	echo "# ksymwatch exit $?"
	sed 's/^/# /' /tmp/ksym
	check "perf ksymbol: the slot is registered" grep -q '^register 0x[0-9a-f]* [0-9]*$' /tmp/ksym
	check "perf ksymbol: the slot is unregistered" grep -q '^unregister 0x' /tmp/ksym
	check "perf ksymbol: unregistered only once the slot is gone" \
		sh -c "grep -q '^unregister ' /tmp/ksym && ! grep -q '^unregister .* listed=[^0]' /tmp/ksym"
fi

# 3. The slot allocator's debugfs file (when the series has it): the KUnit suites at
#    boot allocated and freed hundreds of slots of the cache "execslot_test"; its
#    accounting must be back to zero.
if grep -q ' execslot_alloc_locked$' /proc/kallsyms; then
	check "execslot: debugfs stats file" test -r $S
	sed 's/^/# /' $S
	check "execslot: stats list the pages held" grep -q '^pages: [0-9]* ([0-9]* bytes)$' $S
	check "execslot: test cache back to zero slots and bytes" \
		sh -c "awk '\$1 == \"execslot_test\" { found = 1; exit !(\$3 == 0 && \$4 == 0) } END { if (!found) exit 1 }' $S"
	# Addresses in execslot/slots follow kptr_restrict as /proc/kallsyms does: shown
	# to root at 0 and 1 (CAP_SYSLOG), zeros at 2.
	kr=$(cat /proc/sys/kernel/kptr_restrict)
	for k in 0 1 2; do
		echo $k > /proc/sys/kernel/kptr_restrict
		if [ $k = 2 ]; then
			check "execslot: slots hides addresses at kptr_restrict=2" \
				sh -c "grep -q . $SLOTS && ! grep -qv '^0x0000000000000000 ' $SLOTS"
		else
			a=$(awk '$3 == "ftrace_trampoline" { print substr($1, 3); exit }' $SLOTS)
			check "execslot: slots shows kallsyms' addresses at kptr_restrict=$k" \
				sh -c "test -n '$a' && test '$a' != 0000000000000000 && grep -q '^$a t ftrace_trampoline' /proc/kallsyms"
		fi
	done
	echo $kr > /proc/sys/kernel/kptr_restrict
fi

# 4. The base tree's ftracetest cases (tools/testing/selftests/ftrace) for what the
#    series touches: function tracing in instances, filters, triggers, the stack tracer
#    and the profiler (trampolines), kprobe-on-ftrace, fprobe events, direct calls next
#    to trampolines (samples/ftrace/ftrace-direct.ko), and kprobes with insn slots.
# wb_quick=1 on the command line (the norust boot of `test`, the mitigations boots of
# `test --extended`) leaves them out.
# The cases run as one subtest; a case that ftracetest reports UNSUPPORTED or UNTESTED
# (a KTAP SKIP) fails the check after it: every case listed here must run.
if ! grep -q 'wb_quick=1' /proc/cmdline; then
	ktap_sub ftracetest sh "${0%/*}/ftracetest.sh" \
		00basic/basic1.tc 00basic/basic2.tc \
		instances/instance.tc \
		ftrace/func-filter-glob.tc ftrace/func_set_ftrace_file.tc \
		ftrace/func-filter-stacktrace.tc ftrace/func-filter-pid.tc ftrace/func_cpumask.tc \
		ftrace/func_traceonoff_triggers.tc ftrace/func_stack_tracer.tc \
		ftrace/func_profiler.tc \
		kprobe/kprobe_ftrace.tc \
		dynevent/add_remove_fprobe.tc dynevent/add_remove_fprobe_repeat.tc \
		dynevent/add_remove_multiple_fprobe.tc \
		direct/ftrace-direct.tc direct/kprobe-direct.tc \
		kprobe/add_and_remove.tc kprobe/busy_check.tc kprobe/kprobe_args.tc \
		kprobe/multiple_kprobes.tc kprobe/kprobe_opt_types.tc kprobe/probepoint.tc
	check "ftracetest: every case ran" grep -q '^# Totals:.* skip:0' /tmp/ftracetest.ktap
fi

# 5. kprobes stress: N kprobes at function offsets, enabled, disabled and removed, R
#    rounds; the slots come back every time. `test` asks for 1000 x 2 on its first kernel
#    (wb_kprobes=N wb_kprobe_rounds=R on the command line), 200 x 2 elsewhere, 50 x 1 in
#    the quick form.
kpn=$(wb_param wb_kprobes)
kpr=$(wb_param wb_kprobe_rounds)
grep -q 'wb_quick=1' /proc/cmdline && kpn=${kpn:-50} kpr=${kpr:-1}
ktap_sub "kprobe stress" sh "${0%/*}/kprobe-stress.sh" "${kpn:-200}" "${kpr:-2}"

# 6. Nothing above left a splat behind.
if s=$(splat); then not_ok "dmesg: no splat" "$s"; else ok "dmesg: no splat"; fi
ktap_exit
