# tools/guest/hostile-gen.sh: the seeded generators of hostile.sh. Sourced, never run;
# the host's unit tests source it too, under the busybox that the guest runs.
# Both read awk's rand() after srand(SEED): the same SEED, N and list of functions give
# the same lines.

# The awk functions both draw with: r(K) a number below K, hex(K) K hex digits, junk(K)
# K characters of junk_chars: never a glob character, and for set_ftrace_filter no "!"
# either (junk must not match many functions, nor remove the one that keeps the filter
# from being empty).
HK_JUNK='abcdefghijklmnopqrstuvwxyz0123456789_:/+-%$@=.,()|&<>~^ '
HK_JUNK_KP='abcdefghijklmnopqrstuvwxyz0123456789_:/+-%$@=.,()|&<>!~^ '
HK_AWK='
	function r(k) { return int(rand() * k) }
	function hex(k,   s, i) { s = ""; for (i = 0; i < k; i++) s = s substr("0123456789abcdef", r(16) + 1, 1); return s }
	function junk(k,   s, i) {
		s = ""; for (i = 0; i < k; i++) s = s substr(junk_chars, r(length(junk_chars)) + 1, 1); return s }'

# gen_kprobe_events SEED N FUNCS: N lines "ACTION SPEC" (ACTION: a = append, e = append
# and enable), drawn with awk's srand(SEED) from the functions in the file FUNCS.
gen_kprobe_events() {
	awk -v seed="$1" -v n="$2" -v junk_chars="$HK_JUNK_KP" "$HK_AWK"'
	{ f[nf++] = $1 }
	END {
		srand(seed)
		for (i = 0; i < n; i++) {
			fn = f[r(nf)]; e = "p:hk/e" i; act = "a"; k = r(12)
			if (k == 0) s = e " nosuch_" hex(8)
			else if (k == 1) s = e " " fn "+" (100000 + r(1000000))
			else if (k == 2) s = e " " fn "+" (1 + r(40))
			else if (k == 3) s = e " " fn "-" (1 + r(100))
			else if (k == 4) { m = r(3); s = e " " (m == 0 ? fn "+0xffffffffffffffff" : m == 1 ? fn "+4294967296" : "0x" hex(16)) }
			else if (k == 5) s = "p:hk/dup " fn
			else if (k == 6) { m = r(5); s = (m == 0 ? e " " fn " %nosuch" : m == 1 ? e " " fn " +0(%di):u99" : m == 2 ? "r:hk/e" i " " fn " $retval:x7" : m == 3 ? e " " fn " $retval" : e " " fn " arg" (1 + r(20))) }
			else if (k == 7) { m = r(5); s = (m == 0 ? junk(1 + r(200)) : m == 1 ? "p:hk/" hex(40) hex(40) " " fn : m == 2 ? "r" (100000 + r(9000000)) ":hk/e" i " " fn : m == 3 ? "-:hk/nosuch" i : "p:hk/ " fn) }
			else if (k == 8) { m = r(3); s = (m == 0 ? e " " fn : m == 1 ? "r:hk/e" i " " fn : e " " fn " %di %si +0(%sp):x64") }
			else { act = "e"; s = (r(2) ? e " " fn : "r:hk/e" i " " fn " $retval") }
			print act " " s
		}
	}' "$3"
}

# gen_filter_writes SEED N FUNCS: N lines "OP LINE" for the set_ftrace_filter of an
# instance (OP: ">" truncates, ">>" appends, "t" switches the tracer on or off).
# The first function of FUNCS always stays in the filter (it is never negated and every
# truncating write names a function), so the filter is never empty: an empty filter
# would trace every function.
gen_filter_writes() {
	awk -v seed="$1" -v n="$2" -v junk_chars="$HK_JUNK" "$HK_AWK"'
	{ f[nf++] = $1 }
	END {
		srand(seed)
		for (i = 0; i < n; i++) {
			fn = f[1 + r(nf - 1)]; k = r(10)
			if (k == 0) print "> " f[0] " " fn
			else if (k == 1) print ">> " fn
			else if (k == 2) print ">> " substr(fn, 1, 6 + r(4)) "*"
			else if (k == 3) print ">> !" fn
			else if (k == 4) print ">> " fn ":mod:nosuch_" r(100)
			else if (k == 5) print ">> " fn (r(2) ? ":traceoff" : ":stacktrace:" r(5))
			else if (k == 6) print ">> !" fn (r(2) ? ":traceoff" : ":stacktrace")
			else if (k == 7) print ">> " junk(1 + r(120))
			else if (k == 8) print ">> nosuch_" r(1000000)
			else print "t"
		}
	}' "$3"
}
