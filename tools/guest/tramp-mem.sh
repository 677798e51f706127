#!/bin/sh
# Guest part of `tools/workbench bench`: executable memory held by ftrace trampolines
# for N tracing instances, each with the function tracer filtered to one function of
# its own (so each instance's ops is the only user of its call site and gets a
# trampoline). For each N in the arguments it prints one line
#   WB-MEM n=N tramps=T pages=P slot_pages=SP slots=S slot_bytes=SB vmalloc_exec=V
#          empty_pages=E
# with every figure the increase over the state before the instances were made:
# T trampolines (kallsyms "ftrace_trampoline" symbols), P distinct 4 KiB pages they sit
# in, SP/S/SB the execslot cache "ftrace_trampoline" (0 without the series), V bytes of
# /proc/vmallocinfo lines of execmem, E empty pages that execslot keeps for the next slot. Instances are removed again after each N, and a
# line "WB-MEM-BACK n=N ..." shows the state after removal (all 0 if nothing leaked).
# "WB-MEM-ABS n=N ..." gives the same figures as totals, with the trampolines that the
# boot-time self tests left behind.
T=/sys/kernel/tracing
S=/sys/kernel/debug/execslot/stats

# Functions that the guest seldom calls: skip the hot paths (their events cost time under
# TCG) and anything of tracing's own.
grep -E '^[a-z_][a-z0-9_]*$' $T/available_filter_functions |
	grep -vE 'sched|irq|timer|rcu|lock|spin|tick|clock|idle|apic|mutex|page|kmem|slab|alloc|free|cpu|ring_buffer|trace|ftrace|preempt|raw|local|read|write|poll|wake|task|signal|fault|mm|vma|fs|file|dentry|inode|path|mem|copy|user|cache|queue|work|event|probe|syscall|console|print|tty|serial|uart|x64|entry|exit|switch|nmi|smp|percpu|hrtimer|ktime|jiffies|softirq|bh|list|kobject|kref|str|find|get|put' |
	sort -u > /tmp/quiet_funcs

tramp_addrs() { awk '$3 == "ftrace_trampoline" { print $1 }' /proc/kallsyms | sort; }
# Always a number (0 without the series), so that every snapshot has seven fields.
empty_pages() { if [ -r $S ]; then sed -n 's/^empty: \([0-9]*\)$/\1/p' $S; else echo 0; fi; }
slot_field() {
	if [ -r $S ]; then
		awk -v f="$1" '$1 == "ftrace_trampoline" { v = $f } END { print v + 0 }' $S
	else
		echo 0
	fi
}
vm_exec() { awk '/execmem/ { s += $2 } END { print s + 0 }' /proc/vmallocinfo; }
snapshot() {
	tramp_addrs > /tmp/tr
	echo "$(wc -l < /tmp/tr) $(cut -c1-13 /tmp/tr | sort -u | wc -l)" \
		"$(slot_field 2) $(slot_field 3) $(slot_field 4) $(vm_exec) $(empty_pages)" |
		awk '{ for (i = 1; i <= 7; i++) printf "%d ", $i + 0; print "" }'
}
delta() { # label n base now
	echo "$1 n=$2 $3 $4" | awk '{
		split("tramps pages slot_pages slots slot_bytes vmalloc_exec empty_pages", k, " ")
		printf "%s %s", $1, $2
		for (i = 1; i <= 7; i++) printf " %s=%d", k[i], $(i + 9) - $(i + 2)
		print ""
	}'
}

# make_instances PREFIX N: instances PREFIX1..PREFIXN, each with the function tracer
# filtered to one function of its own.
make_instances() {
	head -n "$2" /tmp/quiet_funcs > /tmp/funcs
	i=0
	while read -r f; do
		i=$((i + 1))
		d=$T/instances/$1$i
		mkdir $d && echo "$f" > $d/set_ftrace_filter && echo function > $d/current_tracer ||
			{ echo "WB-MEM-ERROR $1: instance $i ($f) failed"; exit 1; }
	done < /tmp/funcs
}

echo "WB-MEM-INFO kernel=$(uname -r) quiet_functions=$(wc -l < /tmp/quiet_funcs)"
if [ "$1" = --keep ]; then
	# tramp-mem.sh --keep N: make N instances and leave them (for a mixed measurement).
	make_instances keep "$2"
	echo "WB-MEM-KEEP n=$2"
	exit 0
fi
for n in "$@"; do
	if [ "$(wc -l < /tmp/quiet_funcs)" -lt "$n" ]; then
		echo "WB-MEM-ERROR n=$n: only $(wc -l < /tmp/quiet_funcs) functions to trace"
		exit 1
	fi
	base=$(snapshot)
	make_instances m "$n"
	now=$(snapshot)
	delta WB-MEM "$n" "$base" "$now"
	delta WB-MEM-ABS "$n" "0 0 0 0 0 0 0" "$now"
	i=0
	while [ $i -lt "$n" ]; do
		i=$((i + 1))
		echo nop > $T/instances/m$i/current_tracer
		rmdir $T/instances/m$i
	done
	delta WB-MEM-BACK "$n" "$base" "$(snapshot)"
done
echo WB-MEM-DONE
