// SPDX-License-Identifier: GPL-2.0
/*
 * Bench module of `tools/workbench bench`, built against each kernel of the bench:
 * what it costs to ask whether an address is kernel text, and to take a stack trace
 * through an ftrace trampoline, while other ops with trampolines are alive.
 *
 * At load it registers one ftrace_ops on wbtext_tracee(), which therefore gets a
 * trampoline of its own. Load it before the other ops, so that its ops is the last in
 * ftrace's list, the far end of a walk of the list. Writing a number of loops to
 * /sys/module/wbtext/parameters/measure then times, with ktime (under QEMU -icount,
 * a count of instructions), that many
 *   - kernel_text_address() calls on an address inside this ops' trampoline,
 *   - kernel_text_address() calls on an address inside no text at all (module data),
 *   - calls of wbtext_tracee(), whose ftrace callback takes a stack trace: the ORC
 *     unwinder walks out through the trampoline,
 * and prints "wbtext: loops=L in_tramp_ns=.. no_text_ns=.. stack_ns=.. depth=..".
 *
 * kernel_text_address() is not exported; the module finds it with a kprobe, which
 * resolves symbol names, and calls it through the pointer.
 */
#include <linux/ftrace.h>
#include <linux/kprobes.h>
#include <linux/ktime.h>
#include <linux/module.h>
#include <linux/stacktrace.h>

static int (*text_address)(unsigned long addr);
static unsigned long entries[32];
static unsigned int depth;
static unsigned long no_text[4];

static noinline void wbtext_tracee(void)
{
	asm volatile ("" ::: "memory");
}

static void notrace wbtext_callback(unsigned long ip, unsigned long parent_ip,
				    struct ftrace_ops *op, struct ftrace_regs *fregs)
{
	depth = stack_trace_save(entries, ARRAY_SIZE(entries), 0);
}

static struct ftrace_ops wbtext_ops = {
	.func = wbtext_callback,
};

static u64 time_text_address(unsigned long addr, unsigned int loops, int *hits)
{
	u64 t0 = ktime_get_ns();
	unsigned int i;

	*hits = 0;
	for (i = 0; i < loops; i++)
		*hits += text_address(addr);
	return ktime_get_ns() - t0;
}

static int measure_set(const char *val, const struct kernel_param *kp)
{
	unsigned int loops, i;
	u64 in_tramp, no_text_ns, stack, t0;
	int hits_in, hits_no;
	int ret;

	ret = kstrtouint(val, 0, &loops);
	if (ret)
		return ret;
	if (!loops || !wbtext_ops.trampoline)
		return -EINVAL;

	in_tramp = time_text_address(wbtext_ops.trampoline + 1, loops, &hits_in);
	no_text_ns = time_text_address((unsigned long)&no_text[1], loops, &hits_no);
	depth = 0;
	t0 = ktime_get_ns();
	for (i = 0; i < loops; i++)
		wbtext_tracee();
	stack = ktime_get_ns() - t0;
	if (hits_in != loops || hits_no) {
		pr_err("wbtext: kernel_text_address() said %d/%u in the trampoline, %d/%u in data\n",
		       hits_in, loops, hits_no, loops);
		return -EIO;
	}
	pr_info("wbtext: loops=%u in_tramp_ns=%llu no_text_ns=%llu stack_ns=%llu depth=%u\n",
		loops, in_tramp, no_text_ns, stack, depth);
	return 0;
}

static const struct kernel_param_ops measure_ops = {
	.set = measure_set,
};
module_param_cb(measure, &measure_ops, NULL, 0200);
MODULE_PARM_DESC(measure, "write N: time N lookups and N traced calls");

static int __init wbtext_init(void)
{
	struct kprobe kp = { .symbol_name = "kernel_text_address" };
	int ret;

	ret = register_kprobe(&kp);
	if (ret)
		return ret;
	text_address = (void *)kp.addr;
	unregister_kprobe(&kp);

	ret = ftrace_set_filter_ip(&wbtext_ops, (unsigned long)wbtext_tracee, 0, 0);
	if (ret)
		return ret;
	ret = register_ftrace_function(&wbtext_ops);
	if (ret)
		return ret;
	if (!wbtext_ops.trampoline) {
		unregister_ftrace_function(&wbtext_ops);
		pr_err("wbtext: the ops got no trampoline\n");
		return -ENODEV;
	}
	return 0;
}

static void __exit wbtext_exit(void)
{
	unregister_ftrace_function(&wbtext_ops);
}

module_init(wbtext_init);
module_exit(wbtext_exit);
MODULE_DESCRIPTION("workbench: cost of kernel_text_address() and of unwinding through a trampoline");
MODULE_LICENSE("GPL");
