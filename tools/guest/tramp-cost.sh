#!/bin/sh
# Guest part of `tools/workbench bench`: what creating and freeing trampolines and kprobes
# costs. The bench boots the guest with a clock that counts instructions (QEMU -icount
# shift=0, tsc=reliable): every time below is in nanoseconds of that clock, one per
# instruction executed (idle time jumps to the next timer).
# Usage: tramp-cost.sh instances N... | ops N... | kprobes N... | cycles N | calls RUNS CALLS
#
# "instances": for each N, make N tracing instances each tracing one function of its own
# (one trampoline each), then remove them. "ops": for each N, load
# samples/ftrace/ftrace-ops.ko with N ops (nr_ops_irrelevant=N persist=1: N ops
# registered, one trampoline each), then unload it; N=0 first, for the cost of the
# module load and unload themselves. "kprobes": add N kprobe events inside N functions
# (register_kprobe(): an instruction slot each), then remove them. Each prints per N
# a figure line (lib.sh)
#   # wb-figure cost what=W n=N create_us=.. free_us=.. create2_us=.. free2_us=..
#           setmem_create=.. setmem_free=.. flush_create=.. flush_free=..
#           ipi_create=.. ipi_free=.. tlb_create=.. tlb_free=..
#           split_create=.. split_free=.. collapse_create=.. collapse_free=.. tramps=..
#           exec_kib=.. left=.. left_kib=..
# create/free: printk timestamps (microseconds), a timed pass without probes, twice
# (create2/free2: the second time). Then a counted pass with kprobe events on:
# setmem = calls of the set_memory_* functions, flush = calls of
# flush_tlb_kernel_range()/flush_tlb_all() and runs of __cpa_flush_tlb() (kprobe_profile);
# split = large kernel mappings split by set_memory_*() (a probe on the flush that
# follows the split inside __change_page_attr_set_clr(), at WB_SPLIT_AT, which the bench
# finds in vmlinux), collapse = collapse_large_pages() calls that collapsed something
# (kretprobe, counted in an instance of its own); ipi = function-call and TLB-shootdown
# interrupts received (/proc/interrupts CAL + TLB); tramps = trampolines alive after
# creating (kallsyms "ftrace_trampoline" symbols, boot leftovers included); exec_kib = KiB
# of vmalloc areas that execmem added while the N objects are alive (its ROX cache takes
# whole 2 MiB chunks, so this grows in steps of 2048); left / left_kib = trampolines and
# execmem vmalloc KiB still there after freeing them and waiting for the deferred frees
# (0 if nothing leaked). With the
# trampolines or kprobes alive, a figure
#   # wb-figure ptdump what=W n=N pmd_kib=.. pte_kib=..
# gives the executable mappings of the module area by size (page_tables/kernel).
# "cycles": creates and frees one tracing instance N times, timed, then counted as above:
#   # wb-figure cycles n=N fillers=F us=.. setmem=.. flush=.. split=.. collapse=.. ipi=.. tlb=..
# With execslot, F instances fill the pages in use first, so that every cycle's
# trampoline needs a page of its own.
# "calls": RUNS times each of nr_ops_relevant 1 and 2, save_regs 0 and 1, load
# ftrace-ops.ko for CALLS traced calls and print
#   # wb-figure call rel=R regs=S run=I calls=C total_ns=.. ns_per_call=..
# A failure is a KTAP "not ok" line (on stderr: err may run inside a command
# substitution), which fails the bench.
. "${0%/*}/lib.sh"
MOD=$(find /lib/modules -name ftrace-ops.ko | head -n1)
QUIET=/tmp/quiet_funcs
err() { not_ok "tramp-cost: $what" "$*" >&2; exit 1; }

# Timing marks: only a write to /dev/kmsg inside a timed window; the printk timestamps are
# read afterwards (mark_us).
mark() { echo "wb-mark $1" > /dev/kmsg; }
mark_us() {
	# The microseconds get a leading 1: busybox awk reads "026220" as octal.
	v=$(dmesg | sed -n "s/^\[ *\([0-9]*\)\.\([0-9]\{6\}\)\] wb-mark $1\$/\1 1\2/p" |
		tail -n1 | awk '{ printf "%.0f\n", $1 * 1000000 + $2 - 1000000 }')
	[ -n "$v" ] || err "no printk timestamp for mark $1 (CONFIG_PRINTK_TIME?)"
	echo "$v"
}

PERM_FUNCS="set_memory_rox set_memory_ro set_memory_rw set_memory_x set_memory_nx"
# flush_tlb_kernel_range()/flush_tlb_all() calls, and __cpa_flush_tlb(): the TLB flush of
# set_memory_*(), run on every CPU. vfree()'s flushes are deferred (lazy purge) and may
# fall outside the window.
FLUSH_FUNCS="flush_tlb_kernel_range flush_tlb_all __cpa_flush_tlb"
# The collapses are counted in an instance of their own, whose buffer keeps them all.
CT=$T/instances/wbcount
probes_on() {
	for f in $PERM_FUNCS $FLUSH_FUNCS; do
		grep -q " $f\$" /proc/kallsyms || continue
		echo "p:wbcost/$f $f" >> $T/kprobe_events || err "kprobe on $f"
	done
	[ -n "$WB_SPLIT_AT" ] || err "WB_SPLIT_AT is not set"
	echo "p:wbsplit/split $WB_SPLIT_AT" >> $T/kprobe_events || err "kprobe at $WB_SPLIT_AT"
	echo 'r:wbsplit/collapse collapse_large_pages ret=$retval:s32' >> $T/kprobe_events ||
		err "kretprobe on collapse_large_pages"
	echo 1 > $T/events/wbcost/enable && echo 1 > $T/events/wbsplit/split/enable ||
		err "enable wbcost probes"
	mkdir -p $CT && echo 1024 > $CT/buffer_size_kb && echo 'ret != 0' > \
		$CT/events/wbsplit/collapse/filter && echo 1 > $CT/events/wbsplit/collapse/enable ||
		err "count collapses in $CT"
}
probes_off() {
	echo 0 > $T/events/wbcost/enable
	echo 0 > $T/events/wbsplit/split/enable
	echo 0 > $CT/events/wbsplit/collapse/enable
	rmdir $CT
	for f in $PERM_FUNCS $FLUSH_FUNCS; do
		echo "-:wbcost/$f" >> $T/kprobe_events 2>/dev/null
	done
	echo "-:wbsplit/split" >> $T/kprobe_events
	echo "-:wbsplit/collapse" >> $T/kprobe_events
}
# KiB of executable mappings in the module area (where execmem puts ftrace and kprobes
# code), by level: "pmd_kib pte_kib".
PT=/sys/kernel/debug/page_tables/kernel
ptdump() {
	[ -r $PT ] || err "no $PT (CONFIG_PTDUMP_DEBUGFS)"
	awk '/---\[ Modules \]---/ { m = 1; next } /---\[ End Modules \]---/ { m = 0 }
	     m && / x / { v = $2 + 0; if ($2 ~ /M$/) v *= 1024; else if ($2 ~ /G$/) v *= 1048576
			  if ($NF == "pmd") p += v; else if ($NF == "pte") t += v }
	     END { printf "pmd_kib=%d pte_kib=%d\n", p, t }' $PT
}
# "setmem flush cal tlb split collapse" counters now: probe hits (kprobe_profile),
# interrupts received on all CPUs (/proc/interrupts: CAL function calls, TLB shootdowns),
# and the collapses recorded in $CT.
counters() {
	s=$(awk -v l="$PERM_FUNCS" 'BEGIN { n = split(l, a, " "); for (i = 1; i <= n; i++) w[a[i]] = 1 }
		$1 in w { s += $2 } END { print s + 0 }' $T/kprobe_profile)
	f=$(awk -v l="$FLUSH_FUNCS" 'BEGIN { n = split(l, a, " "); for (i = 1; i <= n; i++) w[a[i]] = 1 }
		$1 in w { s += $2 } END { print s + 0 }' $T/kprobe_profile)
	irq() { awk -v r="$1:" '$1 == r { for (k = 2; k <= NF && $k ~ /^[0-9]+$/; k++) s += $k }
		END { print s + 0 }' /proc/interrupts; }
	sp=$(awk '$1 == "split" { print $2 }' $T/kprobe_profile)
	echo "$s $f $(irq CAL) $(irq TLB) $((sp + 0)) $(grep -c ' collapse: ' $CT/trace)"
}
tramps() { awk '$3 == "ftrace_trampoline" { n++ } END { print n + 0 }' /proc/kallsyms; }
# Bytes of execmem's vmalloc areas (/proc/vmallocinfo).
vm_exec() { awk '/execmem/ { s += $2 } END { print s + 0 }' /proc/vmallocinfo; }
# settle TRAMPS: wait (up to 60 s of the guest clock) until the trampolines are back to
# TRAMPS and no slot free is pending: frees after a grace period are not leaks.
settle() {
	i=0
	while [ $i -lt 60 ] && { [ "$(tramps)" != "$1" ] ||
		[ "$(slot_total pending '^(ftrace_|kprobe_)')" != 0 ]; }; do
		sleep 1
		i=$((i + 1))
	done
}

# create_instances_from I PREFIX: instance PREFIX<I>, tracing the I-th quiet function.
create_instances_from() {
	d=$T/instances/$2$1
	f=$(sed -n "${1}p" $QUIET)
	mkdir $d && echo "$f" > $d/set_ftrace_filter && echo function > $d/current_tracer ||
		err "instance $2$1 ($f)"
}
# create_instances N / free_instances N: N instances, each tracing one function.
create_instances() {
	head -n "$1" $QUIET > /tmp/funcs
	i=0
	while read -r f; do
		i=$((i + 1))
		d=$T/instances/c$i
		mkdir $d && echo "$f" > $d/set_ftrace_filter &&
			echo function > $d/current_tracer || err "instance $i ($f)"
	done < /tmp/funcs
}
free_instances() {
	i=0
	while [ $i -lt "$1" ]; do
		i=$((i + 1))
		echo nop > $T/instances/c$i/current_tracer
		rmdir $T/instances/c$i || err "rmdir instance $i"
	done
}
# create_ops N / free_ops N: ftrace-ops.ko registering N ops, and unloading it.
create_ops() {
	insmod "$MOD" nr_function_calls=1 nr_ops_relevant=0 nr_ops_irrelevant="$1" persist=1 ||
		err "insmod ftrace-ops.ko with $1 ops"
}
free_ops() { rmmod ftrace_ops || err "rmmod ftrace_ops"; }
# create_kprobes N / free_kprobes N: N kprobe events inside N functions (past the fentry
# call, so each is a kprobe with an instruction slot of its own), and removing them.
kp_funcs() {
	grep -E '^[a-z_][a-z0-9_]*$' $T/available_filter_functions |
		grep -vE 'kprobe|trace|ftrace|rcu|sched|irq|lock|spin|tick|clock|idle|apic|nmi|preempt|percpu|smp|cpu|text_poke|int3|debug|kallsyms|mutex|entry|exit|switch|page|split|collapse|flush|set_memory' \
		> /tmp/kpc_funcs
}
create_kprobes() {
	i=0
	while read -r f && [ $i -lt "$1" ]; do
		for off in 9 5; do
			if echo "p:kpc/k$i $f+$off" >> $T/kprobe_events 2>/dev/null; then
				i=$((i + 1))
				break
			fi
		done
	done < /tmp/kpc_funcs
	[ $i = "$1" ] || err "only $i of $1 kprobes registered"
}
free_kprobes() {
	i=0
	while [ $i -lt "$1" ]; do
		echo "-:kpc/k$i" >> $T/kprobe_events || err "remove kprobe $i"
		i=$((i + 1))
	done
}

# measure WHAT N...: a timed pass per N without probes, then a counted pass per N with
# the probes on (their handlers would slow the kernel that calls set_memory_*() more).
# The printk timestamps of marks "$1-0", "$1-1", "$1-2" (before creating, after creating,
# after freeing), on one line.
mark_times() { echo "$(mark_us "$1-0") $(mark_us "$1-1") $(mark_us "$1-2")"; }
measure() {
	what=$1
ktap_header
	shift
	for r in 1 2; do
		for n in "$@"; do
			mark "$what-$n-$r-0"
			create_$what "$n"
			mark "$what-$n-$r-1"
			free_$what "$n"
			mark "$what-$n-$r-2"
		done
	done
	for n in "$@"; do
		echo "$n $(mark_times "$what-$n-1") $(mark_times "$what-$n-2")"
	done > /tmp/times_$what
	# mark_us ran in a subshell: an error there only shows as a short line.
	[ "$(awk 'NF != 7' /tmp/times_$what | wc -l)" = 0 ] || err "missing printk timestamps"
	probes_on
	for n in "$@"; do
		tr0=$(tramps)
		vm0=$(vm_exec)
		c0=$(counters)
		create_$what "$n"
		c1=$(counters)
		tr=$(tramps)
		vm1=$(vm_exec)
		figure ptdump "what=$what n=$n $(ptdump)"
		c1=$(counters)
		free_$what "$n"
		c2=$(counters)
		settle "$tr0"
		# Fields: 1-6 times of both runs, then three counter snapshots of 6, trampolines.
		echo "$(awk -v n="$n" '$1 == n { print $2, $3, $4, $5, $6, $7 }' /tmp/times_$what)" \
			"$c0 $c1 $c2 $tr" | awk -v w="$what" -v n="$n" -v ek=$(((vm1 - vm0) / 1024)) \
			-v left=$(($(tramps) - tr0)) -v lk=$((($(vm_exec) - vm0) / 1024)) '{
			printf "# wb-figure cost what=%s n=%s create_us=%.0f free_us=%.0f", w, n, $2 - $1, $3 - $2
			printf " create2_us=%.0f free2_us=%.0f", $5 - $4, $6 - $5
			printf " setmem_create=%d setmem_free=%d", $13 - $7, $19 - $13
			printf " flush_create=%d flush_free=%d", $14 - $8, $20 - $14
			printf " ipi_create=%d ipi_free=%d", $15 - $9, $21 - $15
			printf " tlb_create=%d tlb_free=%d", $16 - $10, $22 - $16
			printf " split_create=%d split_free=%d", $17 - $11, $23 - $17
			printf " collapse_create=%d collapse_free=%d tramps=%d", $18 - $12, $24 - $18, $25
			printf " exec_kib=%d left=%d left_kib=%d\n", ek, left, lk
		}'
	done
	probes_off
}

# cycles N: one tracing instance created and freed N times.
exec_pages() { slot_line pages; }
cycles() {
	# Fill the pages in use, so that the next trampoline needs a page: instances until
	# the allocator takes a page, then the last one goes again (its page empties).
	fillers=0
	if [ -r $S ]; then
		p0=$(exec_pages)
		while [ "$(exec_pages)" = "$p0" ]; do
			[ $fillers -lt 64 ] || err "64 instances took no new page"
			fillers=$((fillers + 1))
			create_instances_from $fillers fill
		done
		echo nop > $T/instances/fill$fillers/current_tracer
		rmdir $T/instances/fill$fillers || err "rmdir filler $fillers"
		fillers=$((fillers - 1))
	fi
	one=$(sed -n "$((fillers + 1))p" $QUIET)
	cycle() {
		i=0
		while [ $i -lt "$1" ]; do
			i=$((i + 1))
			mkdir $T/instances/cyc && echo "$one" > $T/instances/cyc/set_ftrace_filter &&
				echo function > $T/instances/cyc/current_tracer || err "cycle $i"
			echo nop > $T/instances/cyc/current_tracer
			rmdir $T/instances/cyc || err "cycle $i: rmdir"
		done
	}
	mark cycles-0
	cycle "$1"
	mark cycles-1
	us=$(($(mark_us cycles-1) - $(mark_us cycles-0)))
	probes_on
	c0=$(counters)
	cycle "$1"
	c1=$(counters)
	probes_off
	echo "$c0 $c1" | awk -v n="$1" -v f=$fillers -v us=$us '{
		printf "# wb-figure cycles n=%s fillers=%s us=%.0f setmem=%d flush=%d", n, f, us, $7 - $1, $8 - $2
		printf " ipi=%d tlb=%d split=%d collapse=%d\n", $9 - $3, $10 - $4, $11 - $5, $12 - $6
	}'
	i=0
	while [ $i -lt $fillers ]; do
		i=$((i + 1))
		echo nop > $T/instances/fill$i/current_tracer
		rmdir $T/instances/fill$i || err "rmdir filler $i"
	done
}

calls() {
	[ -n "$MOD" ] || err "ftrace-ops.ko not found"
	r=0
	while [ $r -lt "$1" ]; do
		r=$((r + 1))
		for rel in 1 2; do
			for regs in 0 1; do
				# Without persist the module unloads itself (init returns -EINVAL)
				# after printing "Attempted <calls> calls to tracee_relevant in
				# <ns>ns (<ns>ns / call)".
				dmesg -c > /dev/null
				insmod "$MOD" nr_function_calls="$2" nr_ops_relevant=$rel \
					save_regs=$regs 2>/dev/null
				line=$(dmesg | grep 'Attempted' | tail -n1)
				out=$(echo "$line" | sed -n "s/.*Attempted \([0-9]*\) calls to .* in \([0-9]*\)ns (\([0-9]*\)ns \/ call).*/calls=\1 total_ns=\2 ns_per_call=\3/p")
				[ -n "$out" ] || err "ftrace-ops.ko rel=$rel regs=$regs printed no result"
				figure call "rel=$rel regs=$regs run=$r $out"
			done
		done
	done
}

what=$1
ktap_header
shift
case $what in
instances)
	[ -s $QUIET ] || err "no function list $QUIET (run tramp-mem.sh first)"
	for n in "$@"; do
		[ "$(wc -l < $QUIET)" -ge "$n" ] || err "n=$n: only $(wc -l < $QUIET) functions"
	done
	measure instances "$@"
	;;
ops)
	[ -n "$MOD" ] || err "ftrace-ops.ko not found"
	# n=0 first: what loading and unloading the module costs by itself.
	measure ops 0 "$@"
	;;
kprobes)
	kp_funcs
	measure kprobes "$@"
	;;
cycles)
	[ -s $QUIET ] || err "no function list $QUIET (run tramp-mem.sh first)"
	cycles "$1"
	;;
calls) calls "$@" ;;
*) err "usage: tramp-cost.sh instances|ops|kprobes N... | cycles N | calls RUNS CALLS" ;;
esac
ok "tramp-cost: $what"
ktap_exit
