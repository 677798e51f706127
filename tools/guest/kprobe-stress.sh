#!/bin/sh
# Adds N kprobe events at an offset inside N functions (past the fentry call, so each
# is a real kprobe with an instruction slot, optimized where it can be), enables them
# all, disables and removes them, ROUNDS times. KTAP checks (lib.sh): all probes
# registered, optimized ones listed as such, accounting back to zero after each round,
# no splat. Bench figures per round:
#   # wb-figure kp tag=TAG round=R n=N ... kprobe_pages=.. tramp_pages=.. exec_pages=..
# (execslot debugfs; without the series: the distinct pages of kallsyms kprobe_insn_page,
# kprobe_optinsn_page and ftrace_trampoline symbols).
# Usage: kprobe-stress.sh N ROUNDS [TAG]
N=${1:-1000}
ROUNDS=${2:-3}
TAG=${3:-kprobes}
. "${0%/*}/lib.sh"
L=/sys/kernel/debug/kprobes/list
ktap_header
# kprobes take their slots from execslot only on the series' full path (wb_path=execslot
# on the command line; "ftrace": only the trampolines are in slots, as in the middle of
# the series; "mainline": neither).
kp_execslot=
[ "$(wb_param wb_path)" = execslot ] && kp_execslot=1

# Distinct pages holding kallsyms symbols named $1.
kallsyms_pages() { awk -v n="$1" '$3 == n { print substr($1, 1, 13) }' /proc/kallsyms | sort -u | wc -l; }
# Pages holding both an ftrace trampoline and a kprobes slot (debugfs execslot/slots:
# "0xffffffffa0000d00 208 ftrace_trampoline").
shared_pages() {
	awk '{ p = substr($1, 1, length($1) - 3)
	       if ($3 == "ftrace_trampoline") t[p] = 1; else if ($3 ~ /^kprobe_/) k[p] = 1 }
	     END { n = 0; for (p in t) if (p in k) n++; print n }' /sys/kernel/debug/execslot/slots
}
snapshot() {
	if [ -r $S ]; then
		echo "insn_slots=$(slot_col kprobe_insn_page slots) optinsn_slots=$(slot_col kprobe_optinsn_page slots)" \
			"insn_bytes=$(slot_col kprobe_insn_page bytes) optinsn_bytes=$(slot_col kprobe_optinsn_page bytes)" \
			"kprobe_pages=$(($(slot_col kprobe_insn_page pages) + $(slot_col kprobe_optinsn_page pages)))" \
			"tramp_pages=$(kallsyms_pages ftrace_trampoline)" \
			"exec_pages=$(slot_line pages)" \
			"pending=$(($(slot_col kprobe_insn_page pending) + $(slot_col kprobe_optinsn_page pending)))" \
			"shared_pages=$(shared_pages)"
	else
		kp=$(($(kallsyms_pages kprobe_insn_page) + $(kallsyms_pages kprobe_optinsn_page)))
		tp=$(kallsyms_pages ftrace_trampoline)
		echo "insn_slots=0 optinsn_slots=0 insn_bytes=0 optinsn_bytes=0" \
			"kprobe_pages=$kp tramp_pages=$tp exec_pages=$((kp + tp)) pending=0" \
			"shared_pages=0"
	fi
}

# Candidate functions: traceable (so they have an fentry call to step over), not
# tracing's or kprobes' own, not hot under TCG.
grep -E '^[a-z_][a-z0-9_]*$' $T/available_filter_functions |
	grep -vE 'kprobe|trace|ftrace|rcu|sched|irq|lock|spin|tick|clock|idle|apic|nmi|preempt|percpu|smp|cpu|text_poke|int3|debug|kallsyms|mutex|entry|exit|switch' \
	> /tmp/kp_funcs
echo "# candidates=$(wc -l < /tmp/kp_funcs) n=$N rounds=$ROUNDS"

r=0
while [ $r -lt "$ROUNDS" ]; do
	r=$((r + 1))
	echo > $T/kprobe_events
	i=0
	while read -r f && [ $i -lt "$N" ]; do
		for off in 9 5; do
			if echo "p:kps/k$i $f+$off" >> $T/kprobe_events 2>/dev/null; then
				i=$((i + 1))
				break
			fi
		done
	done < /tmp/kp_funcs
	[ $i = "$N" ] || not_ok "round $r: add $N events" "only $i added"
	if echo 1 > $T/events/kps/enable; then
		# Give the optimizer (it runs after a delay) time to optimize what it can.
		sleep 3
		reg=$(grep -c ' k  ' $L)
		opt=$(grep -c 'OPTIMIZED' $L)
		figure kp "tag=$TAG round=$r n=$i registered=$reg optimized=$opt $(snapshot)"
		[ "$reg" -ge "$i" ] && ok "round $r: $i kprobes registered" ||
			not_ok "round $r: $i kprobes registered" "kprobes/list has $reg"
		[ "$opt" -gt 0 ] && ok "round $r: some optimized" ||
			not_ok "round $r: some optimized" "none [OPTIMIZED]"
		# /proc/kallsyms lists every slot once, and reading it costs (centiseconds of
		# /proc/uptime) what the walk of the slots costs: the kallsyms figure.
		t0=$(cut -d' ' -f1 /proc/uptime)
		cat /proc/kallsyms > /tmp/kallsyms
		t1=$(cut -d' ' -f1 /proc/uptime)
		ks=$(awk '$3 == "kprobe_insn_page"' /tmp/kallsyms | wc -l)
		figure kallsyms "tag=$TAG round=$r n=$i insn_syms=$ks" \
			"cs=$(( $(echo $t1 | tr -d .) - $(echo $t0 | tr -d .) ))"
		if [ -n "$kp_execslot" ]; then
			k=$(($(slot_col kprobe_insn_page slots) + 0))
			ko=$(($(slot_col kprobe_optinsn_page slots) + 0))
			[ "$ks" = "$k" ] && ok "round $r: kallsyms lists each insn slot once" ||
				not_ok "round $r: kallsyms lists each insn slot once" "$ks symbols for $k slots"
			kso=$(awk '$3 == "kprobe_optinsn_page"' /tmp/kallsyms | wc -l)
			[ "$kso" = "$ko" ] && ok "round $r: kallsyms lists each optinsn slot once" ||
				not_ok "round $r: kallsyms lists each optinsn slot once" "$kso symbols for $ko slots"
			dup=$(awk '$3 ~ /^kprobe_(opt)?insn_page$/ { print $1 }' /tmp/kallsyms | sort | uniq -d | wc -l)
			[ "$dup" = 0 ] && ok "round $r: no slot listed twice in kallsyms" ||
				not_ok "round $r: no slot listed twice in kallsyms" "$dup addresses twice"
			[ "$k" -ge "$i" ] && ok "round $r: an insn slot per kprobe" ||
				not_ok "round $r: an insn slot per kprobe" "$k slots for $i kprobes"
		fi
		echo 0 > $T/events/kps/enable
	else
		not_ok "round $r: enable" "echo 1 > events/kps/enable failed"
	fi
	echo > $T/kprobe_events || not_ok "round $r: remove events" "echo > kprobe_events failed"
	# Slots are released after a grace period, by a work item.
	if [ -n "$kp_execslot" ]; then
		t=0
		while [ $t -lt 20 ]; do
			[ "$(($(slot_col kprobe_insn_page slots) + $(slot_col kprobe_optinsn_page slots)))" = 0 ] && break
			sleep 1
			t=$((t + 1))
		done
		figure kp-back "tag=$TAG round=$r $(snapshot)"
		left=$(($(slot_col kprobe_insn_page slots) + $(slot_col kprobe_optinsn_page slots)))
		[ "$left" = 0 ] && ok "round $r: slots back to zero" ||
			not_ok "round $r: slots back to zero" "$left slots left after 20 s"
	fi
done
if s=$(splat); then not_ok "no splat" "$s"; else ok "no splat"; fi
ktap_exit
