#!/bin/sh
# tools/guest/modmap.sh: while ftrace is tracing, it keeps the names of a module's init
# functions after the module loader has freed their text (ftrace_free_mem()); that
# text goes back to the executable memory allocator and soon holds a ftrace trampoline.
# The trampoline must not be named as the module's init function. Tracing instances,
# one function each, are added until a trampoline sits in ftrace-ops.ko's freed init
# text; the names %pS gives in enabled_functions are then checked. Needs
# samples/ftrace/ftrace-ops.ko. KTAP.
. "${0%/*}/lib.sh"
MOD=$(find /lib/modules -name ftrace-ops.ko | head -n1)
MAX=64

ktap_header
if [ -z "$MOD" ]; then
	not_ok "modmap: ftrace-ops.ko present" "not found under /lib/modules"
	ktap_exit
fi
# persist=1: its ops stay registered, so ftrace is tracing when the init text is freed.
if ! insmod "$MOD" nr_function_calls=1 nr_ops_relevant=1 nr_ops_irrelevant=0 persist=1; then
	not_ok "modmap: ftrace-ops.ko loaded" "insmod failed"
	ktap_exit
fi
# The init text's page (one page: ftrace-ops.ko's init text is small).
page=$(cat /sys/module/ftrace_ops/sections/.init.text)
page=${page#0x}
page=${page%???}
# ftrace_free_mem() saved the init function's name before insmod returned: it is listed
# as 'T' (ftrace's) instead of the module's own 't'. do_free_init() frees the text itself
# later, after an RCU grace period, from a work item: the instances below go on until a
# trampoline gets it.
i=0
while ! grep -q ' T ftrace_ops_sample_init' /proc/kallsyms && [ $i -lt 15 ]; do
	i=$((i + 1))
	sleep 1
done
check "modmap: the init function's name kept after its text was freed" \
	grep -q ' T ftrace_ops_sample_init' /proc/kallsyms

n=0
hit=""
for f in $(quiet_functions | head -n $MAX); do
	n=$((n + 1))
	d=$T/instances/wb_modmap$n
	mkdir $d || { not_ok "modmap: instance $n made" "mkdir $d failed"; break; }
	echo "$f" > $d/set_ftrace_filter && echo function > $d/current_tracer ||
		{ not_ok "modmap: instance $n traces $f" "function tracer refused"; break; }
	# kallsyms lists every trampoline as ftrace_trampoline.
	if grep -q "^$page... t ftrace_trampoline" /proc/kallsyms; then
		hit=$f
		break
	fi
done
if [ -z "$hit" ]; then
	not_ok "modmap: a trampoline in the freed init text" \
		"none in page $page after $n instances"
else
	ok "modmap: a trampoline in the freed init text"
	# The last instance's trampoline is the one in the init text: %pS must give it
	# as an address, not as the init function.
	line=$(grep "^$hit " $T/enabled_functions)
	case "$line" in
	*"tramp: ftrace_ops_sample_init"*)
		not_ok "modmap: no trampoline named as the freed init function" "$line" ;;
	*"tramp: 0x$page"*)
		ok "modmap: no trampoline named as the freed init function" ;;
	*)
		not_ok "modmap: no trampoline named as the freed init function" \
			"$hit has no trampoline in page $page: $line" ;;
	esac
	named=$(grep 'tramp: ftrace_ops_sample_init' $T/enabled_functions | head -n 1)
	check "modmap: no other trampoline named so" test -z "$named"
fi

while [ $n -gt 0 ]; do
	d=$T/instances/wb_modmap$n
	if [ -d $d ]; then
		echo nop > $d/current_tracer
		rmdir $d || not_ok "modmap: instance $n removed" "rmdir $d failed"
	fi
	n=$((n - 1))
done
check "modmap: ftrace-ops.ko unloaded" rmmod ftrace_ops
ktap_exit
