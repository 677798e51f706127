#!/bin/sh
# Guest part of `tools/workbench bench`: executable memory held by ftrace trampolines
# for N tracing instances, each with the function tracer filtered to one function of
# its own (so each instance's ops is the only user of its call site and gets a
# trampoline). For each N in the arguments it prints one figure line (lib.sh)
#   # wb-figure mem state=held n=N tramps=T pages=P slot_pages=SP slots=S slot_bytes=SB
#     vmalloc_exec=V empty_pages=E
# with every figure the increase over the state before the instances were made:
# T trampolines (kallsyms "ftrace_trampoline" symbols), P distinct 4 KiB pages they sit
# in, SP/S/SB the execslot cache "ftrace_trampoline" (0 without the series), V bytes of
# /proc/vmallocinfo lines of execmem, E empty pages that execslot keeps for the next
# slot. Instances are removed again after each N, and the figure with state=back shows
# the state after removal (all 0 if nothing leaked); state=abs gives the same figures
# as totals, with the trampolines that the boot-time self tests left behind. A failure
# is a KTAP "not ok" line, which fails the bench.
. "${0%/*}/lib.sh"
quiet_functions > /tmp/quiet_funcs

tramp_addrs() { awk '$3 == "ftrace_trampoline" { print $1 }' /proc/kallsyms | sort; }
vm_exec() { awk '/execmem/ { s += $2 } END { print s + 0 }' /proc/vmallocinfo; }
# Seven numbers (the slot figures are 0 without the series).
snapshot() {
	tramp_addrs > /tmp/tr
	echo "$(wc -l < /tmp/tr) $(cut -c1-13 /tmp/tr | sort -u | wc -l)" \
		"$(slot_col ftrace_trampoline pages) $(slot_col ftrace_trampoline slots)" \
		"$(slot_col ftrace_trampoline bytes) $(vm_exec) $(slot_line empty)" |
		awk '{ for (i = 1; i <= 7; i++) printf "%d ", $i + 0; print "" }'
}
delta() { # state n base now
	figure mem "$(echo "state=$1 n=$2 $3 $4" | awk '{
		split("tramps pages slot_pages slots slot_bytes vmalloc_exec empty_pages", k, " ")
		printf "%s %s", $1, $2
		for (i = 1; i <= 7; i++) printf " %s=%d", k[i], $(i + 9) - $(i + 2)
	}')"
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
			{ not_ok "tramp-mem: instance $1$i" "tracing $f failed"; ktap_exit; }
	done < /tmp/funcs
}

ktap_header
figure mem-info "kernel=$(uname -r) quiet_functions=$(wc -l < /tmp/quiet_funcs)"
if [ "$1" = --keep ]; then
	# tramp-mem.sh --keep N: make N instances and leave them (for a mixed measurement).
	make_instances keep "$2"
	ok "tramp-mem: $2 instances made and kept"
	ktap_exit
fi
for n in "$@"; do
	if [ "$(wc -l < /tmp/quiet_funcs)" -lt "$n" ]; then
		not_ok "tramp-mem: n=$n" "only $(wc -l < /tmp/quiet_funcs) functions to trace"
		ktap_exit
	fi
	base=$(snapshot)
	make_instances m "$n"
	now=$(snapshot)
	delta held "$n" "$base" "$now"
	delta abs "$n" "0 0 0 0 0 0 0" "$now"
	i=0
	while [ $i -lt "$n" ]; do
		i=$((i + 1))
		echo nop > $T/instances/m$i/current_tracer
		rmdir $T/instances/m$i
	done
	delta back "$n" "$base" "$(snapshot)"
done
ok "tramp-mem: $* measured"
ktap_exit
