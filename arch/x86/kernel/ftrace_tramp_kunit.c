// SPDX-License-Identifier: GPL-2.0
/*
 * KUnit tests of ftrace trampolines in execslot slots: the trampoline that
 * ftrace creates for a dynamically allocated ftrace_ops runs, passes the ops,
 * is found by every lookup, unwinds, and is released with the ops.
 */
#include <kunit/test.h>
#include <linux/execslot.h>
#include <linux/ftrace.h>
#include <linux/kallsyms.h>
#include <linux/kernel.h>
#include <linux/slab.h>
#include <linux/stacktrace.h>

#define NR_ENTRIES	32

struct tramp_test {
	struct ftrace_ops ops;		/* first: the callback gets &ops */
	bool save_regs;
	int hits;
	unsigned long ret_addr;		/* where the callback returns to */
	unsigned long ip;
	unsigned long regs_ip;
	unsigned int nr_entries;
	unsigned long entries[NR_ENTRIES];
};

static noinline void tramp_test_target(int *x)
{
	WRITE_ONCE(*x, READ_ONCE(*x) + 1);
	barrier();
}

static noinline void tramp_test_caller(int *x)
{
	tramp_test_target(x);
	barrier();
}

static void notrace tramp_test_func(unsigned long ip, unsigned long parent_ip,
				    struct ftrace_ops *op,
				    struct ftrace_regs *fregs)
{
	struct tramp_test *t = container_of(op, struct tramp_test, ops);
	struct pt_regs *regs = ftrace_get_regs(fregs);

	if (t->hits++)
		return;
	t->ret_addr = (unsigned long)__builtin_return_address(0);
	t->ip = ip;
	t->regs_ip = regs ? instruction_pointer(regs) : 0;
	t->nr_entries = stack_trace_save(t->entries, NR_ENTRIES, 0);
}

static bool in_function(unsigned long addr, void *func)
{
	unsigned long size, offset;

	if (!kallsyms_lookup_size_offset((unsigned long)func, &size, &offset))
		return false;
	return addr - (unsigned long)func < size;
}

static void tramp_test_run(struct kunit *test, bool save_regs)
{
	unsigned long tramp, start, size, tmpl;
	struct tramp_test *t;
	bool seen_tramp = false, seen_caller = false;
	const struct execslot_cache *cache;
	unsigned int i;
	int ret, x = 0;

	/*
	 * Not kunit memory: if the ops cannot be unregistered, ftrace still
	 * points to them, so they are leaked rather than freed.
	 */
	t = kzalloc_obj(*t);
	KUNIT_ASSERT_NOT_NULL(test, t);
	t->ops.func = tramp_test_func;
	/*
	 * No FTRACE_OPS_FL_RECURSION: the trampoline then calls
	 * tramp_test_func() directly, not through ftrace_ops_assist_func().
	 */
	if (save_regs)
		t->ops.flags = FTRACE_OPS_FL_SAVE_REGS;

	ret = ftrace_set_filter_ip(&t->ops, (unsigned long)tramp_test_target,
				   0, 0);
	if (!ret)
		ret = register_ftrace_function(&t->ops);
	if (ret) {
		ftrace_free_filter(&t->ops);
		kfree(t);
		KUNIT_FAIL(test, "registering the ops: %d", ret);
		return;
	}

	tramp = t->ops.trampoline;
	KUNIT_EXPECT_TRUE(test, t->ops.flags & FTRACE_OPS_FL_ALLOC_TRAMP);
	KUNIT_EXPECT_NE(test, tramp, 0);
	tramp_test_caller(&x);

	/* The trampoline is a live slot of its own size, named for kallsyms. */
	KUNIT_EXPECT_TRUE(test, execslot_lookup(tramp, &start, &size, &cache));
	KUNIT_EXPECT_EQ(test, start, tramp);
	KUNIT_EXPECT_EQ(test, size, t->ops.trampoline_size);
	KUNIT_EXPECT_NOT_NULL(test, cache);
	if (cache)
		KUNIT_EXPECT_STREQ(test, cache->name, "ftrace_trampoline");
	KUNIT_EXPECT_TRUE(test, is_ftrace_trampoline(tramp));
	KUNIT_EXPECT_TRUE(test, is_ftrace_trampoline(tramp +
			  t->ops.trampoline_size - 1));
	KUNIT_EXPECT_TRUE(test, kernel_text_address(tramp));
	KUNIT_EXPECT_PTR_EQ(test, ftrace_ops_trampoline(tramp +
			    t->ops.trampoline_size - 1), &t->ops);

	/* The slot alone tells the unwinder which template the code is from. */
	tmpl = save_regs ? (unsigned long)ftrace_regs_caller :
			   (unsigned long)ftrace_caller;
	KUNIT_EXPECT_EQ(test, x86_ftrace_tramp_template_ip(tramp), tmpl);
	KUNIT_EXPECT_EQ(test, x86_ftrace_tramp_template_ip(tramp +
			t->ops.trampoline_size - 1),
			tmpl + t->ops.trampoline_size - 1);
	KUNIT_EXPECT_EQ(test, x86_ftrace_tramp_template_ip(tmpl), 0);

	/* The trampoline called us, with our ops. */
	KUNIT_EXPECT_EQ(test, x, 1);
	KUNIT_EXPECT_EQ(test, t->hits, 1);
	KUNIT_EXPECT_GE(test, t->ret_addr, tramp);
	KUNIT_EXPECT_LT(test, t->ret_addr, tramp + t->ops.trampoline_size);
	KUNIT_EXPECT_EQ(test, t->ip,
			ftrace_location((unsigned long)tramp_test_target));
	if (save_regs)
		KUNIT_EXPECT_EQ(test, t->regs_ip, t->ip + MCOUNT_INSN_SIZE);

	/* The unwinder goes through the trampoline to the traced call. */
	for (i = 0; i < t->nr_entries; i++) {
		if (t->entries[i] - tramp < t->ops.trampoline_size)
			seen_tramp = true;
		if (in_function(t->entries[i], tramp_test_caller))
			seen_caller = true;
	}
	KUNIT_EXPECT_TRUE_MSG(test, seen_tramp, "no frame in the trampoline");
	KUNIT_EXPECT_TRUE_MSG(test, seen_caller, "%ps not in the stack trace",
			      tramp_test_caller);

	/* Unregistering waits for RCU tasks, then releases the slot. */
	ret = unregister_ftrace_function(&t->ops);
	KUNIT_EXPECT_EQ(test, ret, 0);
	if (ret)
		return;
	ftrace_free_filter(&t->ops);
	KUNIT_EXPECT_FALSE(test, execslot_contains(tramp));
	KUNIT_EXPECT_FALSE(test, is_ftrace_trampoline(tramp));
	KUNIT_EXPECT_EQ(test, x86_ftrace_tramp_template_ip(tramp), 0);
	tramp_test_caller(&x);
	KUNIT_EXPECT_EQ(test, t->hits, 1);
	KUNIT_EXPECT_EQ(test, x, 2);
	kfree(t);
}

static void tramp_test_ftrace_caller(struct kunit *test)
{
	tramp_test_run(test, false);
}

static void tramp_test_ftrace_regs_caller(struct kunit *test)
{
	tramp_test_run(test, true);
}

#define TRAMP_TEST_TARGET(n)					\
static noinline void tramp_test_target##n(int *x)		\
{								\
	WRITE_ONCE(*x, READ_ONCE(*x) + (n));			\
	barrier();						\
}

TRAMP_TEST_TARGET(1)
TRAMP_TEST_TARGET(2)
TRAMP_TEST_TARGET(3)
TRAMP_TEST_TARGET(4)
TRAMP_TEST_TARGET(5)
TRAMP_TEST_TARGET(6)
TRAMP_TEST_TARGET(7)
TRAMP_TEST_TARGET(8)

static void (*const tramp_test_targets[])(int *) = {
	tramp_test_target1, tramp_test_target2, tramp_test_target3,
	tramp_test_target4, tramp_test_target5, tramp_test_target6,
	tramp_test_target7, tramp_test_target8,
};

/*
 * Eight ops, each tracing a function of its own, each get a trampoline; the
 * trampolines do not overlap and share pages (a page each without slots).
 */
static void tramp_test_shared_pages(struct kunit *test)
{
	int n = ARRAY_SIZE(tramp_test_targets);
	unsigned long pages[ARRAY_SIZE(tramp_test_targets)];
	struct tramp_test *t;
	int i, j, ret, nr_pages = 0, x = 0, sum = 0;
	bool leak = false;

	/* Not kunit memory, as in tramp_test_run(). */
	t = kzalloc_objs(*t, n);
	KUNIT_ASSERT_NOT_NULL(test, t);
	for (i = 0; i < n; i++) {
		t[i].ops.func = tramp_test_func;
		ret = ftrace_set_filter_ip(&t[i].ops,
					   (unsigned long)tramp_test_targets[i],
					   0, 0);
		if (!ret)
			ret = register_ftrace_function(&t[i].ops);
		if (ret) {
			KUNIT_FAIL(test, "registering ops %d: %d", i, ret);
			ftrace_free_filter(&t[i].ops);
			n = i;
			goto out;
		}
	}
	for (i = 0; i < n; i++) {
		unsigned long tramp = t[i].ops.trampoline;

		KUNIT_EXPECT_NE(test, tramp, 0);
		for (j = 0; j < i; j++) {
			unsigned long other = t[j].ops.trampoline;

			KUNIT_EXPECT_GE(test, tramp - other,
					(unsigned long)t[j].ops.trampoline_size);
			KUNIT_EXPECT_GE(test, other - tramp,
					(unsigned long)t[i].ops.trampoline_size);
		}
		for (j = 0; j < nr_pages && pages[j] != (tramp & PAGE_MASK); j++)
			;
		if (j == nr_pages)
			pages[nr_pages++] = tramp & PAGE_MASK;
		tramp_test_targets[i](&x);
		sum += i + 1;
		KUNIT_EXPECT_EQ(test, t[i].hits, 1);
		KUNIT_EXPECT_LT(test, t[i].ret_addr - tramp,
				(unsigned long)t[i].ops.trampoline_size);
	}
	KUNIT_EXPECT_EQ(test, x, sum);
	/* Eight trampolines of ~200 bytes: one page, or two if they straddle. */
	KUNIT_EXPECT_LE(test, nr_pages, 2);
out:
	for (i = 0; i < n; i++) {
		/* Unregistering clears ops.trampoline. */
		unsigned long tramp = t[i].ops.trampoline;

		ret = unregister_ftrace_function(&t[i].ops);
		KUNIT_EXPECT_EQ(test, ret, 0);
		if (ret) {
			leak = true;
			continue;
		}
		ftrace_free_filter(&t[i].ops);
		KUNIT_EXPECT_FALSE(test, execslot_contains(tramp));
	}
	if (!leak)
		kfree(t);
}

static struct kunit_case tramp_test_cases[] = {
	KUNIT_CASE(tramp_test_ftrace_caller),
	KUNIT_CASE(tramp_test_ftrace_regs_caller),
	KUNIT_CASE(tramp_test_shared_pages),
	{}
};

static struct kunit_suite tramp_test_suite = {
	.name = "ftrace_slot_trampolines",
	.test_cases = tramp_test_cases,
};

kunit_test_suite(tramp_test_suite);
