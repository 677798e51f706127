#!/bin/sh
# Guest part of `tools/workbench demo`: N tracing instances, each tracing one
# distinct function, and where their trampolines live.
N=${1:-8}
T=/sys/kernel/tracing
out() { echo "WB-DEMO $*"; }

echo WB-DEMO-BEGIN
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
grep 'tramp:' $T/enabled_functions | sed 's/^/WB-DEMO   /'
out ""
out "kallsyms:"
grep -E ' (ftrace_trampoline|kprobe_insn_page|kprobe_optinsn_page)' /proc/kallsyms | sed 's/^/WB-DEMO   /'
out ""
out "trampolines and the pages they sit in:"
awk '/ ftrace_trampoline/ { print $1 }' /proc/kallsyms | sort > /tmp/tramps
ntramp=$(wc -l < /tmp/tramps)
npages=$(cut -c1-13 /tmp/tramps | sort -u | wc -l)
out "  $ntramp trampolines in $npages distinct 4 KiB pages"
if [ -r /sys/kernel/debug/execslot/stats ]; then
	out ""
	out "slot allocator (debugfs):"
	sed 's/^/WB-DEMO   /' /sys/kernel/debug/execslot/stats
fi
out ""
out "/proc/vmallocinfo, executable memory (execmem):"
grep -E 'execmem|ftrace|kprobe|text_poke' /proc/vmallocinfo | sed 's/^/WB-DEMO   /'
echo WB-DEMO-END
