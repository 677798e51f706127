#!/bin/sh
# Guest part of `tools/workbench demo`: N tracing instances, each tracing one
# distinct function, and where their trampolines live. The host shows its lines as
# they are (the console lines between WB-GUEST-START and WB-GUEST-EXIT).
N=${1:-8}
T=/sys/kernel/tracing
out() { echo "$*"; }

out "kernel: $(uname -r)"
grep -E '^[a-z_][a-z0-9_]*$' $T/available_filter_functions | grep -E '^(vfs_|do_sys|ksys_|__x64_sys_)' |
	head -n "$N" > /tmp/funcs
i=0
while read -r f; do
	i=$((i + 1))
	mkdir $T/instances/demo$i
	echo "$f" > $T/instances/demo$i/set_ftrace_filter
	echo function > $T/instances/demo$i/current_tracer
done < /tmp/funcs
out "$i tracing instances, each with the function tracer filtered to one function"
out ""
out "enabled_functions (each call site and the trampoline it calls):"
grep 'tramp:' $T/enabled_functions | sed 's/^/  /'
out ""
out "kallsyms:"
grep -E ' (ftrace_trampoline|kprobe_insn_page|kprobe_optinsn_page)([[:space:]]|$)' /proc/kallsyms |
	sed 's/^/  /'
out ""
out "trampolines and the pages they sit in:"
awk '$3 == "ftrace_trampoline" { print $1 }' /proc/kallsyms | sort > /tmp/tramps
ntramp=$(wc -l < /tmp/tramps)
npages=$(cut -c1-13 /tmp/tramps | sort -u | wc -l)
out "  $ntramp trampolines (the $i above and those left by the boot self tests)"
out "  in $npages distinct 4 KiB pages: $((npages * 4)) KiB of executable memory"
if [ -r /sys/kernel/debug/execslot/stats ]; then
	out ""
	out "slot allocator (debugfs):"
	sed 's/^/  /' /sys/kernel/debug/execslot/stats
	out ""
	out "the slots (debugfs execslot/slots: address, bytes, cache):"
	sed 's/^/  /' /sys/kernel/debug/execslot/slots
fi
out ""
out "/proc/vmallocinfo, executable memory (execmem; with the ROX cache one 2 MiB"
out "mapping serves every trampoline page, so the per-page count above is what they hold):"
grep -E 'execmem|ftrace|kprobe|text_poke' /proc/vmallocinfo | sed 's/^/  /'
