#!/bin/sh
# The series under tools that nobody here wrote: Debian's trace-cmd and perf, run from
# the host's root in a virtme-ng guest (`tools/workbench test` boots the kernel with
# --vng; the guest sees the host's /usr). One KTAP result per check (lib.sh).
#
#   1. trace-cmd record creates two tracing instances, each tracing one function; both
#      call sites call a dynamic trampoline (an execslot slot on the series' path) while
#      it records; trace-cmd report shows both functions' events; the instances and
#      their trampolines are gone afterwards.
#   2. perf record -e cpu-clock -a -g while an instance traces a hot function (its
#      trampoline) and an optimized kprobe fires (its optinsn slot); the workload removes
#      both before perf stops, so that no /proc/kallsyms read afterwards can name them:
#      perf report and perf script attribute samples to ftrace_trampoline and
#      kprobe_optinsn_page through the PERF_RECORD_KSYMBOL events alone, which register
#      each of them with its address and unregister it. This comes before any other
#      optimized kprobe: mainline registers a kprobes page only when it allocates it, so
#      perf could not name a slot in a page made before it started.
#   3. perf probe adds a kprobe at a function offset (an instruction slot), perf record
#      counts its hits, perf probe -d removes it and its slot.
# Usage: realtools.sh (wb_path= on the kernel command line says which path to expect)
. "${0%/*}/lib.sh"
ktap_header
want=$(wb_param wb_path)
echo "# $(uname -r) wb_path=$want; $(trace-cmd --version 2>&1 | head -n1); $(perf --version 2>&1)"
mountpoint -q $T || mount -t tracefs nodev $T
mountpoint -q /sys/kernel/debug || mount -t debugfs nodev /sys/kernel/debug
echo 0 > /proc/sys/kernel/kptr_restrict
echo -1 > /proc/sys/kernel/perf_event_paranoid
W=$(mktemp -d /tmp/realtools.XXXXXX)
cd "$W" || exit 1

# The trampoline each function's call site calls now ("" if none).
tramp_of() { grep "^$1 " $T/enabled_functions | sed -n 's/.*tramp: 0x\([0-9a-f]*\).*/\1/p'; }
live_slot() { [ -r $SLOTS ] && grep -q "^0x$1 [0-9]* $2\$" $SLOTS; }

# 1. trace-cmd
tramps_before=$(grep -c ' t ftrace_trampoline' /proc/kallsyms)
slots_before=$(slot_col ftrace_trampoline slots)
cat > during.sh <<EOF
grep tramp: $T/enabled_functions > $W/enabled
cat $SLOTS > $W/slots 2>/dev/null
grep ' t ftrace_trampoline' /proc/kallsyms > $W/kallsyms
ls $T/instances > $W/instances
cat /proc/version > /dev/null
echo x > $W/written
EOF
check "trace-cmd: record with two instances" \
	trace-cmd record -q -o tc.dat -B wbtc1 -p function -l vfs_read \
	-B wbtc2 -p function -l vfs_write -- sh during.sh
sed 's/^/# /' enabled
check "trace-cmd: both instances existed while it recorded" \
	sh -c "grep -qx wbtc1 instances && grep -qx wbtc2 instances"
for f in vfs_read vfs_write; do
	t=$(sed -n "s/^$f .*tramp: 0x\([0-9a-f]*\).*/\1/p" enabled)
	check "trace-cmd: $f called a dynamic trampoline" test -n "$t"
	check "trace-cmd: $f's trampoline was in kallsyms" grep -q "^$t t ftrace_trampoline" kallsyms
	[ "$want" = execslot ] &&
		check "trace-cmd: $f's trampoline was a live execslot slot" \
			grep -q "^0x$t [0-9]* ftrace_trampoline\$" slots
done
trace-cmd report -i tc.dat > tc.txt 2>&1
sed -n '1,6p' tc.txt | sed 's/^/# /'
check "trace-cmd: report shows vfs_read in instance wbtc1" \
	sh -c "grep -A1000000 '^wbtc1' tc.txt | grep -q 'function: *vfs_read'"
check "trace-cmd: report shows vfs_write" grep -q 'function: *vfs_write' tc.txt
check "trace-cmd: its instances are gone" sh -c "! ls $T/instances | grep -q wbtc"
check "trace-cmd: their trampolines are gone from kallsyms" \
	test "$(grep -c ' t ftrace_trampoline' /proc/kallsyms)" = "$tramps_before"
[ -r $S ] && check "trace-cmd: their slots are released" \
	test "$(slot_col ftrace_trampoline slots)" = "$slots_before"

# 2. perf record -a -g: samples attributed to trampolines and kprobe slots by the
#    PERF_RECORD_KSYMBOL events that perf recorded while they existed.
I=$T/instances/wbperf
cat > load.sh <<EOF
mkdir $I && echo vfs_read > $I/set_ftrace_filter && echo function > $I/current_tracer
echo 'p:wbperf/opt vfs_write+9' >> $T/kprobe_events && echo 1 > $T/events/wbperf/opt/enable
sleep 2
grep tramp: $T/enabled_functions > $W/perf-enabled
grep 'vfs_write+0x9' /sys/kernel/debug/kprobes/list > $W/perf-kprobe
dd if=/dev/zero of=/dev/null bs=1 count=100000 2>/dev/null
echo 0 > $T/events/wbperf/opt/enable && echo '-:wbperf/opt' >> $T/kprobe_events
echo nop > $I/current_tracer && rmdir $I
sleep 1
EOF
check "perf record: cpu-clock -a -g while a trampoline and an optprobe run" \
	perf record -q -o cpu.data -e cpu-clock -F 2000 -a -g -- sh load.sh
sed 's/^/# /' perf-enabled perf-kprobe
check "perf record: the kprobe was optimized" grep -q OPTIMIZED perf-kprobe
check "perf record: the instance and the probe are gone" \
	sh -c "! grep -q 'vfs_write+0x9' /sys/kernel/debug/kprobes/list && test ! -d $I"
# perf report -D: the side-band records. "PERF_RECORD_KSYMBOL addr A len L type 2
# flags F name N": type 2 is PERF_RECORD_KSYMBOL_TYPE_OOL, flags 0x1 an unregister.
perf report -i cpu.data -D 2>/dev/null | grep 'PERF_RECORD_KSYMBOL' > ksym.txt
sed -n 's/.*\(PERF_RECORD_KSYMBOL.*\)/\1/p' ksym.txt | sort | uniq -c | sed 's/^/# /'
# Mainline registers a kprobes page when it allocates it and keeps the last page when it
# empties, so it never unregisters that one; the series registers each slot, and
# unregisters it when the slot goes.
for n in ftrace_trampoline kprobe_optinsn_page; do
	check "perf: a ksymbol event registers $n" grep -q "flags 0x0 name $n\$" ksym.txt
	[ $n = ftrace_trampoline ] || [ "$want" = execslot ] &&
		check "perf: a ksymbol event unregisters $n" grep -q "flags 0x1 name $n\$" ksym.txt
done
t=$(sed -n 's/.*tramp: 0x\([0-9a-f]*\).*/\1/p' perf-enabled)
check "perf: the trampoline's ksymbol event has its address" \
	grep -q "addr $t len [0-9]* type 2 flags 0x0 name ftrace_trampoline\$" ksym.txt
# perf script: callchain frames "ffffffffa00004e3 ftrace_trampoline+0x83 (ftrace_trampoline)";
# the DSO in brackets is the map that perf made from the ksymbol event.
perf script -i cpu.data > cpu.txt 2>/dev/null
nt=$(grep -c ' ftrace_trampoline+0x[0-9a-f]* (ftrace_trampoline)$' cpu.txt)
no=$(grep -c ' kprobe_optinsn_page+0x[0-9a-f]* (kprobe_optinsn_page)$' cpu.txt)
echo "# perf script: $(grep -c 'cpu-clock:' cpu.txt) samples; callchain frames in ftrace_trampoline: $nt, in kprobe_optinsn_page: $no"
grep -m1 -B2 -A2 ' (ftrace_trampoline)$' cpu.txt | sed 's/^/# /'
grep -m1 -B2 -A2 ' (kprobe_optinsn_page)$' cpu.txt | sed 's/^/# /'
check "perf script: samples through ftrace_trampoline" test "$nt" -gt 0
check "perf script: samples through kprobe_optinsn_page" test "$no" -gt 0
perf report -i cpu.data --stdio --no-children --sort dso,sym > report.txt 2>/dev/null
grep -E 'ftrace_trampoline|kprobe_optinsn_page' report.txt | head -n 4 | sed 's/^/# perf report: /'
check "perf report: samples in ftrace_trampoline" \
	grep -q 'ftrace_trampoline  *\[k\] ftrace_trampoline' report.txt
check "perf report: samples in kprobe_optinsn_page" \
	grep -q 'kprobe_optinsn_page  *\[k\] kprobe_optinsn_page' report.txt

# 3. perf probe at a function offset: a kprobe with an instruction slot.
insn_before=$(slot_col kprobe_insn_page slots)
probe=
for o in 9 5 8 4; do
	if perf probe -q -a "wbprobe=vfs_read+$o" 2>perf-probe.err; then probe=vfs_read+$o; break; fi
done
sed 's/^/# perf probe: /' perf-probe.err
if [ -n "$probe" ]; then
	ok "perf probe: add $probe"
	check "perf probe: listed" sh -c "perf probe -l 2>/dev/null | grep -q 'probe:wbprobe'"
	check "perf probe: a kprobe at the offset, not on ftrace" \
		sh -c "grep ' vfs_read+0x' /sys/kernel/debug/kprobes/list | grep -vq FTRACE"
	[ "$want" = execslot ] && check "perf probe: its instruction slot is a live execslot slot" \
		test "$(slot_col kprobe_insn_page slots)" -gt "$insn_before"
	check "perf record: -e probe:wbprobe" \
		perf record -q -o probe.data -e probe:wbprobe -a -- sh -c 'cat /proc/version /proc/cmdline >/dev/null'
	n=$(perf script -i probe.data 2>/dev/null | grep -c 'wbprobe')
	echo "# perf script: $n probe:wbprobe samples"
	check "perf script: the probe was hit" test "$n" -gt 0
	check "perf probe: remove" perf probe -q -d 'probe:wbprobe'
	check "perf probe: gone from kprobes/list" \
		sh -c "! grep -q ' vfs_read+0x' /sys/kernel/debug/kprobes/list"
	if [ "$want" = execslot ]; then
		t=0
		while [ "$(slot_col kprobe_insn_page slots)" != "$insn_before" ] && [ $t -lt 20 ]; do
			sleep 1
			t=$((t + 1))
		done
		check "perf probe: its slot is released" \
			test "$(slot_col kprobe_insn_page slots)" = "$insn_before"
	fi
else
	not_ok "perf probe: add vfs_read+offset" "$(head -n1 perf-probe.err)"
fi

if s=$(splat); then not_ok "dmesg: no splat" "$s"; else ok "dmesg: no splat"; fi
cd / && rm -rf "$W"
ktap_exit
