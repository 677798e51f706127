#!/bin/sh
# Guest part of `tools/workbench bench`: what kernel_text_address() and a stack trace
# through an ftrace trampoline cost with N ops (each with a trampoline) alive.
# Usage: text-lookup.sh LOOPS N...
#
# Loads wbtext.ko (tools/guest-mod/wbtext.c: one ops with a trampoline, registered
# first, so that it ends up last in ftrace's list of ops), then for each N loads
# samples/ftrace/ftrace-ops.ko with N-1 more ops (nr_ops_irrelevant, persist=1: a
# trampoline each), has wbtext.ko time LOOPS of each case and prints
# a figure line (lib.sh)
#   # wb-figure text n=N loops=L in_tramp_ns=.. no_text_ns=.. stack_ns=.. depth=..
# (guest clock under -icount: instructions), then unloads ftrace-ops.ko again.
LOOPS=$1
shift
MOD=$(find /lib/modules -name wbtext.ko | head -n1)
OPS=$(find /lib/modules -name ftrace-ops.ko | head -n1)
. "${0%/*}/lib.sh"
err() { not_ok "text-lookup" "$*"; ktap_exit; }
ktap_header
[ -n "$MOD" ] || err "wbtext.ko not found"
[ -n "$OPS" ] || err "ftrace-ops.ko not found"
insmod "$MOD" || err "insmod wbtext.ko"
for n in "$@"; do
	if [ "$n" -gt 1 ]; then
		insmod "$OPS" nr_function_calls=1 nr_ops_relevant=0 \
			nr_ops_irrelevant=$((n - 1)) persist=1 ||
			err "insmod ftrace-ops.ko with $((n - 1)) ops"
	fi
	echo "$LOOPS" > /sys/module/wbtext/parameters/measure || err "measure with $n ops"
	line=$(dmesg | grep 'wbtext: loops=' | tail -n1)
	[ -n "$line" ] || err "wbtext.ko printed no result"
	figure text "n=$n ${line#*wbtext: }"
	if [ "$n" -gt 1 ]; then
		rmmod ftrace_ops || err "rmmod ftrace_ops"
	fi
done
rmmod wbtext || err "rmmod wbtext"
ok "text-lookup: $*"
ktap_exit
