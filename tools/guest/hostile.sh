#!/bin/sh
# Hostile input, seeded so that a failure can be replayed: what a confused or hostile
# root writes into tracefs. Run by stress.sh as a subtest.
# Usage: hostile.sh SEED N
#   1. N writes to kprobe_events from a seeded generator (gen_kprobe_events): unknown
#      symbols, offsets past the end, inside an instruction, negative or huge, raw
#      addresses, duplicate event names, bad fetch arguments, malformed lines, and valid
#      probes, some of them enabled. Each write is refused or works; what works is
#      removed again, and nothing may stay behind.
#   2. N / 4 writes to the set_ftrace_filter of an instance with the function tracer on
#      (gen_filter_writes): functions, globs, negations, unknown modules, function
#      commands, malformed lines, with the tracer switched on and off between them.
#   3. Two workers make and remove the same four instances in a seeded random order
#      (N / 10 steps each), each instance tracing one function while it lives.
#   4. Afterwards: no kprobe event, no instance and no trampoline left, slot accounting
#      back to where it was. The host checks the console for splats.
# The sequences depend only on SEED, N and the kernel's list of functions: the figure
# line "# wb-figure hostile seed=S n=N kprobe_sha=.. filter_sha=.." lets two runs be
# compared, and the same seed replays the same writes.
SEED=${1:-1}
N=${2:-2000}
. "${0%/*}/lib.sh"

. "${0%/*}/hostile-gen.sh"

# The events defined in kprobe_events, as GROUP/EVENT: a write may have named its event
# or left the kernel to name it ("p:hk/ FUNC" is "p:hk/p_FUNC_0").
kp_events() { sed -n 's/^[pr][0-9]*:\([^ ]*\) .*/\1/p' $T/kprobe_events; }
kprobe_writes() { # SEED N FUNCS
	acc=0; ref=0; left=0
	gen_kprobe_events "$1" "$2" "$3" > /tmp/hk_seq
	while read -r act spec; do
		if printf '%s\n' "$spec" >> $T/kprobe_events 2>/dev/null; then
			acc=$((acc + 1))
			if [ "$act" = e ]; then
				ev=$(kp_events | head -n1)
				echo 1 > $T/events/$ev/enable && cat /proc/version > /dev/null &&
					echo 0 > $T/events/$ev/enable
			fi
			for ev in $(kp_events); do echo "-:$ev" >> $T/kprobe_events; done
		else
			ref=$((ref + 1))
		fi
		# Refused, or removed again: nothing of it stays.
		if [ -n "$(cat $T/kprobe_events)" ]; then
			left=$((left + 1))
			echo "# hostile: left behind after '$spec': $(head -c 200 $T/kprobe_events)"
			echo > $T/kprobe_events
		fi
	done < /tmp/hk_seq
	echo "# hostile: kprobe_events: $acc accepted, $ref refused, $left left behind"
	[ $((acc + ref)) = "$2" ] && [ $left = 0 ] && [ $acc -gt 0 ] && [ $ref -gt 0 ]
}

filter_writes() { # SEED N FUNCS
	d=$T/instances/hk_filter
	gen_filter_writes "$1" "$2" "$3" > /tmp/hf_seq
	mkdir $d && echo "$(head -n1 "$3")" > $d/set_ftrace_filter &&
		echo function > $d/current_tracer || return 1
	on=1; acc=0; ref=0
	while read -r op line; do
		case $op in
		t)
			if [ $on = 1 ]; then echo nop > $d/current_tracer; on=0
			else echo function > $d/current_tracer; on=1; fi ;;
		'>') printf '%s\n' "$line" > $d/set_ftrace_filter 2>/dev/null && acc=$((acc + 1)) || ref=$((ref + 1)) ;;
		*) printf '%s\n' "$line" >> $d/set_ftrace_filter 2>/dev/null && acc=$((acc + 1)) || ref=$((ref + 1)) ;;
		esac
	done < /tmp/hf_seq
	echo "# hostile: set_ftrace_filter: $acc accepted, $ref refused"
	first=$(grep -c . $d/set_ftrace_filter)
	echo nop > $d/current_tracer && rmdir $d && [ "$first" -gt 0 ] && [ $acc -gt 0 ] && [ $ref -gt 0 ]
}

# race_worker SEED STEPS FUNCS: mkdir or rmdir one of four instances, chosen at random;
# what fails (EEXIST, ENOENT, EBUSY) is counted, not an error.
race_worker() {
	awk -v seed="$1" -v n="$2" 'BEGIN { srand(seed); for (i = 0; i < n; i++) print int(rand() * 8) }' |
	while read -r k; do
		d=$T/instances/hk_race$((k % 4))
		if [ "$k" -lt 4 ]; then
			{ mkdir $d && sed -n "$((k + 2))p" "$3" > $d/set_ftrace_filter &&
				echo function > $d/current_tracer; } 2>/dev/null
		else
			{ echo nop > $d/current_tracer; rmdir $d; } 2>/dev/null
		fi
		echo x
	done | wc -l > /tmp/hk_race_$1
}

tramps() { awk '$3 == "ftrace_trampoline"' /proc/kallsyms | wc -l; }
slots_all() { echo "$(slot_total slots '^(ftrace_|kprobe_)') $(slot_total pending '^(ftrace_|kprobe_)')"; }
settled() { # BASE: slots (no pending frees) and trampolines as before, within 30 s
	t=0
	while [ $t -lt 30 ] && [ "$(slots_all) $(tramps)" != "$1" ]; do sleep 1; t=$((t + 1)); done
	[ "$(slots_all) $(tramps)" = "$1" ]
}

ktap_header
quiet_functions | head -n 300 > /tmp/hk_funcs
echo > $T/kprobe_events
base="$(slots_all) $(tramps)"
figure hostile "seed=$SEED n=$N kprobe_sha=$(gen_kprobe_events "$SEED" "$N" /tmp/hk_funcs | md5sum | cut -c1-12)" \
	"filter_sha=$(gen_filter_writes "$SEED" $((N / 4)) /tmp/hk_funcs | md5sum | cut -c1-12)"
check "hostile: kprobe_events: $N writes refused cleanly or working, none left" \
	kprobe_writes "$SEED" "$N" /tmp/hk_funcs
check "hostile: set_ftrace_filter: $((N / 4)) writes" filter_writes "$SEED" $((N / 4)) /tmp/hk_funcs
race_worker $((SEED * 2)) $((N / 10)) /tmp/hk_funcs &
race_worker $((SEED * 2 + 1)) $((N / 10)) /tmp/hk_funcs &
wait
for k in 0 1 2 3; do
	{ echo nop > $T/instances/hk_race$k/current_tracer; rmdir $T/instances/hk_race$k; } 2>/dev/null
done
check "hostile: instance races: both workers ran every step" sh -c \
	"[ \"\$(cat /tmp/hk_race_$((SEED * 2)) /tmp/hk_race_$((SEED * 2 + 1)))\" = \"$((N / 10))
$((N / 10))\" ]"
check "hostile: no instance left" sh -c "! ls $T/instances | grep -q '^hk_'"
check "hostile: no kprobe event left" sh -c "[ -z \"\$(cat $T/kprobe_events)\" ]"
check "hostile: slots and trampolines back ($base)" settled "$base"
ktap_exit
