/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Sub-page slots of executable memory (kernel/execslot.rs).
 *
 * Users that need small pieces of executable code (ftrace trampolines,
 * kprobes instruction slots) allocate slots from shared pages instead of a
 * page each. Pages come from execmem and are read-only and executable from
 * the moment they are mapped; slot contents are only ever written with
 * text_poke. New pages and freed slots are filled with INT3.
 */
#ifndef _LINUX_EXECSLOT_H
#define _LINUX_EXECSLOT_H

#include <linux/errno.h>
#include <linux/execmem.h>
#include <linux/rcupdate.h>
#include <linux/types.h>

/**
 * struct execslot_cache - a user of executable slots
 * @name: name of the user's slots in kallsyms and perf ksymbol events
 * @type: execmem type of the pages the slots are carved from; users of the
 *	  same type share pages
 *
 * Define one per user with DEFINE_EXECSLOT_CACHE(); it must stay alive for
 * as long as the kernel runs.
 */
struct execslot_cache {
	const char *name;
	enum execmem_type type;
};

#define DEFINE_EXECSLOT_CACHE(_var, _name, _type)			\
	struct execslot_cache _var = { .name = (_name), .type = (_type) }

#ifdef CONFIG_EXECSLOT

void execslot_init(void);
void execslot_debugfs_init(void);

/**
 * execslot_alloc - allocate an executable slot
 * @cache: the user
 * @size: bytes needed, 1 to PAGE_SIZE; the slot is rounded up to 16 bytes
 *	  and 16-byte aligned
 * @slot: where to store the slot's address
 *
 * The slot is filled with INT3. Write it with execslot_write(). May sleep
 * and takes text_mutex: must not be called with text_mutex held.
 *
 * Return: 0, -EINVAL for a bad size, -ENOMEM when no memory is left.
 */
int execslot_alloc(struct execslot_cache *cache, size_t size, void **slot);

/**
 * execslot_write - write into a slot with text_poke
 * @slot: address returned by execslot_alloc()
 * @offset: where to write inside the slot
 * @src: bytes to write
 * @len: how many
 *
 * Not safe against concurrent execution of the bytes written: fill a slot
 * before publishing its address. May sleep and takes text_mutex.
 *
 * Return: 0, or -EINVAL if @slot is not a live slot or the range does not
 * fit inside it.
 */
int execslot_write(void *slot, size_t offset, const void *src, size_t len);

/**
 * execslot_free - release a slot
 * @slot: address returned by execslot_alloc()
 *
 * The caller guarantees that nothing executes the slot any more (for
 * trampolines: after the RCU-tasks grace periods). The slot is filled with
 * INT3 and given back; a page left empty goes back to execmem after an RCU
 * grace period. May sleep.
 *
 * Return: 0, or -EINVAL if @slot is not the start of a live slot.
 */
int execslot_free(void *slot);

/*
 * Lock-free lookups. The callers below hold rcu_read_lock(); the Rust side
 * only loads atomics and is blacklisted for kprobes.
 */
bool __execslot_contains(unsigned long addr);
bool __execslot_lookup(unsigned long addr, unsigned long *start,
		       unsigned long *size, const char **name);

/**
 * execslot_contains - whether @addr lies inside a live slot
 * @addr: any address
 *
 * Safe from any context, NMI included.
 */
static inline bool execslot_contains(unsigned long addr)
{
	bool ret;

	rcu_read_lock();
	ret = __execslot_contains(addr);
	rcu_read_unlock();
	return ret;
}

/**
 * execslot_lookup - the live slot around @addr
 * @addr: any address
 * @start: where to store the slot's start
 * @size: where to store the slot's size (a multiple of 16 bytes)
 * @name: where to store the name of the slot's cache
 *
 * Safe from any context, NMI included.
 *
 * Return: whether @addr lies in a live slot; the outputs are set only then.
 */
static inline bool execslot_lookup(unsigned long addr, unsigned long *start,
				   unsigned long *size, const char **name)
{
	bool ret;

	rcu_read_lock();
	ret = __execslot_lookup(addr, start, size, name);
	rcu_read_unlock();
	return ret;
}

#else /* !CONFIG_EXECSLOT */

static inline void execslot_init(void) { }
static inline void execslot_debugfs_init(void) { }

static inline int execslot_alloc(struct execslot_cache *cache, size_t size,
				 void **slot)
{
	return -EOPNOTSUPP;
}

static inline int execslot_write(void *slot, size_t offset, const void *src,
				 size_t len)
{
	return -EOPNOTSUPP;
}

static inline int execslot_free(void *slot)
{
	return -EOPNOTSUPP;
}

static inline bool execslot_contains(unsigned long addr)
{
	return false;
}

static inline bool execslot_lookup(unsigned long addr, unsigned long *start,
				   unsigned long *size, const char **name)
{
	return false;
}

#endif /* CONFIG_EXECSLOT */

#endif /* _LINUX_EXECSLOT_H */
