#!/bin/sh
# Guest part of `tools/workbench bench`: what creating and freeing trampolines costs.
# Usage: tramp-cost.sh instances N... | tramp-cost.sh ops N... | tramp-cost.sh calls RUNS CALLS
#
# "instances": for each N, make N tracing instances each tracing one function of its own
# (one trampoline each), then remove them. "ops": for each N, load
# samples/ftrace/ftrace-ops.ko with N ops (nr_ops_irrelevant=N persist=1: N ops
# registered, one trampoline each), then unload it; N=0 first, for the cost of the
# module load and unload themselves. Both print per N
#   WB-COST what=W n=N create_us=.. free_us=.. setmem_create=.. setmem_free=..
#           flush_create=.. flush_free=.. ipi_create=.. ipi_free=.. tramps=..
# create/free times from printk timestamps (microseconds); setmem = calls of the
# set_memory_* functions, flush = calls of flush_tlb_kernel_range()/flush_tlb_all(),
# counted with kprobe events (kprobe_profile); ipi = function-call and TLB-shootdown
# interrupts received (/proc/interrupts CAL + TLB); tramps = trampolines alive after
# creating (kallsyms "ftrace_trampoline" symbols, boot leftovers included).
# "calls": RUNS times each of nr_ops_relevant 1 and 2, save_regs 0 and 1, load
# ftrace-ops.ko for CALLS traced calls and print
#   WB-CALL rel=R regs=S run=I calls=C total_ns=.. ns_per_call=..
T=/sys/kernel/tracing
MOD=$(find /lib/modules -name ftrace-ops.ko | head -n1)
QUIET=/tmp/quiet_funcs
err() { echo "WB-COST-ERROR $*"; exit 1; }

# Timing marks: only a write to /dev/kmsg inside a timed window; the printk timestamps are
# read afterwards (mark_us).
mark() { echo "wb-mark $1" > /dev/kmsg; }
mark_us() {
	v=$(dmesg | sed -n "s/^\[ *\([0-9]*\)\.\([0-9]*\)\] wb-mark $1\$/\1 \2/p" | tail -n1 |
		awk '{ printf "%d\n", $1 * 1000000 + $2 }')
	[ -n "$v" ] || err "no printk timestamp for mark $1 (CONFIG_PRINTK_TIME?)"
	echo "$v"
}

PERM_FUNCS="set_memory_rox set_memory_ro set_memory_rw set_memory_x set_memory_nx"
# flush_tlb_kernel_range()/flush_tlb_all() calls, and __cpa_flush_tlb(): the TLB flush of
# set_memory_*(), run on every CPU. vfree()'s flushes are deferred (lazy purge) and may
# fall outside the window.
FLUSH_FUNCS="flush_tlb_kernel_range flush_tlb_all __cpa_flush_tlb"
probes_on() {
	for f in $PERM_FUNCS $FLUSH_FUNCS; do
		grep -q " $f\$" /proc/kallsyms || continue
		echo "p:wbcost/$f $f" >> $T/kprobe_events || err "kprobe on $f"
	done
	echo 1 > $T/events/wbcost/enable || err "enable wbcost probes"
}
probes_off() {
	echo 0 > $T/events/wbcost/enable
	for f in $PERM_FUNCS $FLUSH_FUNCS; do
		echo "-:wbcost/$f" >> $T/kprobe_events 2>/dev/null
	done
}
# "setmem flush cal tlb" counters now: probe hits (kprobe_profile), and interrupts
# received on all CPUs (/proc/interrupts: CAL function calls, TLB shootdowns).
counters() {
	s=$(awk -v l="$PERM_FUNCS" 'BEGIN { n = split(l, a, " "); for (i = 1; i <= n; i++) w[a[i]] = 1 }
		$1 in w { s += $2 } END { print s + 0 }' $T/kprobe_profile)
	f=$(awk -v l="$FLUSH_FUNCS" 'BEGIN { n = split(l, a, " "); for (i = 1; i <= n; i++) w[a[i]] = 1 }
		$1 in w { s += $2 } END { print s + 0 }' $T/kprobe_profile)
	irq() { awk -v r="$1:" '$1 == r { for (k = 2; k <= NF && $k ~ /^[0-9]+$/; k++) s += $k }
		END { print s + 0 }' /proc/interrupts; }
	echo "$s $f $(irq CAL) $(irq TLB)"
}
tramps() { awk '$3 == "ftrace_trampoline" { n++ } END { print n + 0 }' /proc/kallsyms; }

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

# measure WHAT N...: a timed pass per N without probes, then a counted pass per N with
# the probes on (their handlers would slow the kernel that calls set_memory_*() more).
measure() {
	what=$1
	shift
	for n in "$@"; do
		mark "$what-$n-0"
		create_$what "$n"
		mark "$what-$n-1"
		free_$what "$n"
		mark "$what-$n-2"
	done
	for n in "$@"; do
		echo "$n $(mark_us "$what-$n-0") $(mark_us "$what-$n-1") $(mark_us "$what-$n-2")"
	done > /tmp/times_$what
	# mark_us ran in a subshell: an error there only shows as a short line.
	[ "$(awk 'NF != 4' /tmp/times_$what | wc -l)" = 0 ] || err "missing printk timestamps"
	probes_on
	for n in "$@"; do
		c0=$(counters)
		create_$what "$n"
		c1=$(counters)
		tr=$(tramps)
		c1=$(counters)
		free_$what "$n"
		c2=$(counters)
		echo "$(awk -v n="$n" '$1 == n { print $2, $3, $4 }' /tmp/times_$what)" \
			"$c0 $c1 $c2 $tr" | awk -v w="$what" -v n="$n" '{
			printf "WB-COST what=%s n=%s create_us=%d free_us=%d", w, n, $2 - $1, $3 - $2
			printf " setmem_create=%d setmem_free=%d", $8 - $4, $12 - $8
			printf " flush_create=%d flush_free=%d", $9 - $5, $13 - $9
			printf " ipi_create=%d ipi_free=%d", $10 - $6, $14 - $10
			printf " tlb_create=%d tlb_free=%d tramps=%d\n", $11 - $7, $15 - $11, $16
		}'
	done
	probes_off
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
				echo "WB-CALL rel=$rel regs=$regs run=$r $out"
			done
		done
	done
}

what=$1
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
calls) calls "$@" ;;
*) err "usage: tramp-cost.sh instances|ops N... | calls RUNS CALLS" ;;
esac
echo "WB-COST-DONE $what"
