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

# Microseconds since boot, from the printk timestamp of a marker line.
stamp() {
	echo "wb-stamp $1" > /dev/kmsg
	dmesg | sed -n "s/^\[ *\([0-9]*\)\.\([0-9]*\)\] wb-stamp $1\$/\1 \2/p" | tail -n1 |
		awk '{ printf "%d\n", $1 * 1000000 + $2 }'
}

PERM_FUNCS="set_memory_rox set_memory_ro set_memory_rw set_memory_x set_memory_nx"
FLUSH_FUNCS="flush_tlb_kernel_range flush_tlb_all"
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
# "setmem flush ipi" counters now.
counters() {
	s=$(awk -v l="$PERM_FUNCS" 'BEGIN { n = split(l, a, " "); for (i = 1; i <= n; i++) w[a[i]] = 1 }
		$1 in w { s += $2 } END { print s + 0 }' $T/kprobe_profile)
	f=$(awk -v l="$FLUSH_FUNCS" 'BEGIN { n = split(l, a, " "); for (i = 1; i <= n; i++) w[a[i]] = 1 }
		$1 in w { s += $2 } END { print s + 0 }' $T/kprobe_profile)
	i=$(awk '$1 == "CAL:" || $1 == "TLB:" { for (k = 2; k <= NF && $k ~ /^[0-9]+$/; k++) s += $k }
		END { print s + 0 }' /proc/interrupts)
	echo "$s $f $i"
}
tramps() { awk '$3 == "ftrace_trampoline" { n++ } END { print n + 0 }' /proc/kallsyms; }
# report WHAT N T0 T1 T2 "C0" "C1" "C2" TRAMPS
report() {
	echo "$1 $2 $3 $4 $5 $6 $7 $8 $9" | awk '{
		printf "WB-COST what=%s n=%s create_us=%d free_us=%d", $1, $2, $4 - $3, $5 - $4
		printf " setmem_create=%d setmem_free=%d", $9 - $6, $12 - $9
		printf " flush_create=%d flush_free=%d", $10 - $7, $13 - $10
		printf " ipi_create=%d ipi_free=%d\n", $11 - $8, $14 - $11
	}' | sed "s/\$/ tramps=${10}/"
}

instances() {
	[ -s $QUIET ] || err "no function list $QUIET (run tramp-mem.sh first)"
	for n in "$@"; do
		[ "$(wc -l < $QUIET)" -ge "$n" ] || err "n=$n: only $(wc -l < $QUIET) functions"
		head -n "$n" $QUIET > /tmp/funcs
		c0=$(counters)
		t0=$(stamp c0)
		i=0
		while read -r f; do
			i=$((i + 1))
			d=$T/instances/c$i
			mkdir $d && echo "$f" > $d/set_ftrace_filter &&
				echo function > $d/current_tracer || err "instance $i ($f)"
		done < /tmp/funcs
		t1=$(stamp c1)
		c1=$(counters)
		tr=$(tramps)
		i=0
		while [ $i -lt "$n" ]; do
			i=$((i + 1))
			echo nop > $T/instances/c$i/current_tracer
			rmdir $T/instances/c$i || err "rmdir instance $i"
		done
		t2=$(stamp c2)
		report instances "$n" "$t0" "$t1" "$t2" "$c0" "$c1" "$(counters)" "$tr"
	done
}

ops() {
	[ -n "$MOD" ] || err "ftrace-ops.ko not found"
	# n=0 first: what loading and unloading the module costs by itself.
	for n in 0 "$@"; do
		c0=$(counters)
		t0=$(stamp o0)
		insmod "$MOD" nr_function_calls=1 nr_ops_relevant=0 nr_ops_irrelevant="$n" \
			persist=1 || err "insmod ftrace-ops.ko with $n ops"
		t1=$(stamp o1)
		c1=$(counters)
		tr=$(tramps)
		rmmod ftrace_ops || err "rmmod ftrace_ops"
		t2=$(stamp o2)
		report ops "$n" "$t0" "$t1" "$t2" "$c0" "$c1" "$(counters)" "$tr"
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
				echo "WB-CALL rel=$rel regs=$regs run=$r $out"
			done
		done
	done
}

what=$1
shift
case $what in
instances | ops)
	probes_on
	$what "$@"
	probes_off
	;;
calls) calls "$@" ;;
*) err "usage: tramp-cost.sh instances|ops N... | calls RUNS CALLS" ;;
esac
echo "WB-COST-DONE $what"
