/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Between the two halves of execslot: glue.c (C) and the Rust crate rooted
 * at execslot.rs. Users see only <linux/execslot.h>.
 */
#ifndef _MM_EXECSLOT_INTERNAL_H
#define _MM_EXECSLOT_INTERNAL_H

#include <linux/execslot.h>
#include <linux/types.h>

struct seq_file;

/* Rust, called once from execmem_init() before any other call. */
#ifdef CONFIG_EXECSLOT
void execslot_init(void);
#else
static inline void execslot_init(void) { }
#endif

/* Rust: the contents of the debugfs files that glue.c creates. */
void execslot_seq_stats(struct seq_file *m);
void execslot_seq_slots(struct seq_file *m, bool show_addr);

/*
 * The reaper of execslot_free_deferred(): Rust marks the slot and calls
 * execslot_schedule_reap(); the work in glue.c calls execslot_reap_begin(),
 * waits for a grace period, then calls execslot_reap_locked() with
 * text_mutex held.
 */
void execslot_schedule_reap(void);
void execslot_reap_begin(void);
void execslot_reap_locked(void);

/* glue.c: perf ksymbol events of the caches that ask for them. */
void execslot_perf_ksymbol(const struct execslot_cache *cache,
			   unsigned long addr, unsigned int len,
			   bool unregister);

#ifdef CONFIG_FAIL_EXECSLOT
/* glue.c: fail_execslot fault injection. */
bool execslot_should_fail(size_t size);
#endif

#endif /* _MM_EXECSLOT_INTERNAL_H */
