// SPDX-License-Identifier: GPL-2.0
/*
 * The C half of execslot: what the Rust crate (execslot.rs) reaches only
 * through C: the debugfs files, the deferred-free work, perf ksymbol events
 * and fault injection.
 */

#define pr_fmt(fmt) "execslot: " fmt

#include <linux/debugfs.h>
#include <linux/fault-inject.h>
#include <linux/init.h>
#include <linux/kallsyms.h>
#include <linux/mutex.h>
#include <linux/perf_event.h>
#include <linux/rcupdate.h>
#include <linux/seq_file.h>
#include <linux/text-patching.h>
#include <linux/workqueue.h>

#include "internal.h"

void execslot_perf_ksymbol(const struct execslot_cache *cache,
			   unsigned long addr, unsigned int len,
			   bool unregister)
{
	/* As ftrace_trampoline_free(): the text goes before its symbol does. */
	if (unregister)
		perf_event_text_poke((void *)addr, (void *)addr, len, NULL, 0);
	perf_event_ksymbol(PERF_RECORD_KSYMBOL_TYPE_OOL, addr, len, unregister,
			   cache->name);
}

static int execslot_stats_show(struct seq_file *m, void *v)
{
	execslot_seq_stats(m);
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(execslot_stats);

/*
 * Slot addresses are kernel text addresses: shown under the same rule as in
 * /proc/kallsyms and kprobes/list, for the credentials of the opener.
 */
static int execslot_slots_show(struct seq_file *m, void *v)
{
	execslot_seq_slots(m, kallsyms_show_value(m->file->f_cred));
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(execslot_slots);

static int __init execslot_debugfs_init(void)
{
	struct dentry *dir = debugfs_create_dir("execslot", NULL);

	debugfs_create_file("stats", 0444, dir, NULL, &execslot_stats_fops);
	debugfs_create_file("slots", 0444, dir, NULL, &execslot_slots_fops);
	return 0;
}
late_initcall(execslot_debugfs_init);

/*
 * Slots given to execslot_free_deferred() are released here, after an RCU
 * grace period, with text_mutex held as execslot_free() needs it. This work
 * is the only caller of execslot_reap_begin() and execslot_reap_locked(), and
 * their safety rests on it never running twice at once: it is one work item,
 * always queued on the same workqueue.
 */
static void execslot_reap_workfn(struct work_struct *work)
{
	execslot_reap_begin();
	synchronize_rcu();
	guard(mutex)(&text_mutex);
	execslot_reap_locked();
}

static DECLARE_WORK(execslot_reap_work, execslot_reap_workfn);

void execslot_schedule_reap(void)
{
	/* Any CPU will do. */
	queue_work(system_dfl_wq, &execslot_reap_work);
}

void execslot_flush_deferred(void)
{
	flush_work(&execslot_reap_work);
}

#ifdef CONFIG_FAIL_EXECSLOT
static DECLARE_FAULT_ATTR(fail_execslot);

static int __init setup_fail_execslot(char *str)
{
	return setup_fault_attr(&fail_execslot, str);
}
__setup("fail_execslot=", setup_fail_execslot);

bool execslot_should_fail(size_t size)
{
	return should_fail(&fail_execslot, size);
}

#ifdef CONFIG_FAULT_INJECTION_DEBUG_FS
static int __init fail_execslot_debugfs(void)
{
	struct dentry *dir;

	dir = fault_create_debugfs_attr("fail_execslot", NULL, &fail_execslot);
	return PTR_ERR_OR_ZERO(dir);
}
late_initcall(fail_execslot_debugfs);
#endif /* CONFIG_FAULT_INJECTION_DEBUG_FS */
#endif /* CONFIG_FAIL_EXECSLOT */
