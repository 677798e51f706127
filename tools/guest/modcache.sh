#!/bin/sh
# tools/guest/modcache.sh: ":mod:" filter, notrace and event entries for a module that
# is not loaded are cached in their tracing instance until the module loads; removing
# the instance must free them. Needs kmemleak (the stress config). KTAP.
. "${0%/*}/lib.sh"
K=$KMEMLEAK
D=$T/instances/wb_modcache
MODNAME=wb_absent_mod

ktap_header
if [ ! -w $K ]; then
	not_ok "modcache: kmemleak present" "no $K"
	ktap_exit
fi
# Forget what kmemleak found so far: only what this script leaves counts.
echo scan > $K && echo clear > $K
mkdir $D || { not_ok "modcache: instance made" "mkdir $D failed"; ktap_exit; }
check "modcache: filter cached for an absent module" \
	sh -c "echo 'schedule:mod:$MODNAME' > $D/set_ftrace_filter &&
		echo 'vfs_read:mod:$MODNAME' >> $D/set_ftrace_filter &&
		echo 'schedule:mod:$MODNAME' > $D/set_ftrace_notrace &&
		grep -q ':mod:$MODNAME' $D/set_ftrace_filter &&
		grep -q ':mod:$MODNAME' $D/set_ftrace_notrace"
check "modcache: events cached for an absent module" \
	sh -c "echo ':mod:$MODNAME' > $D/set_event &&
		echo 'sched:sched_switch:mod:$MODNAME' >> $D/set_event &&
		grep -q ':mod:$MODNAME' $D/set_event"
check "modcache: instance removed" rmdir $D
# cache_mod() (function filters or events) or its callers, whatever the inlining.
if ! kmemleak_scan; then
	not_ok "modcache: cache freed with the instance" "echo scan > $K failed"
elif grep -q 'cache_mod\|ftrace_add_mod\|ftrace_mod_callback\|ftrace_set_clr_event' $K; then
	not_ok "modcache: cache freed with the instance" "$(kmemleak_report 1)"
	# Reported here: the end of the stress run looks for new leaks only.
	echo clear > $K
else
	ok "modcache: cache freed with the instance"
fi
ktap_exit
