/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Sub-page slots of executable memory (mm/execslot/).
 *
 * Users that need small pieces of executable code (ftrace trampolines,
 * kprobes instruction slots) allocate slots from shared pages instead of a
 * page each. Pages come from execmem and are read-only and executable from
 * the moment they are mapped (or made so once, where execmem has no ROX
 * cache); slot contents are only ever written with text_poke, without a
 * permission change per slot. New pages and freed slots are filled with INT3.
 */
#ifndef _LINUX_EXECSLOT_H
#define _LINUX_EXECSLOT_H

#include <linux/cleanup.h>
#include <linux/errno.h>
#include <linux/execmem.h>
#include <linux/memory.h>
#include <linux/mutex.h>
#include <linux/rcupdate.h>
#include <linux/types.h>

/**
 * struct execslot_cache - a user of executable slots
 * @name: name of the user's slots in kallsyms and perf ksymbol events
 * @type: execmem type of the pages the slots are carved from; users of the
 *	  same type, or of types that execmem_same_range() finds alike, share
 *	  pages
 * @perf_ksymbol: announce each slot to perf as PERF_RECORD_KSYMBOL_TYPE_OOL
 *		  code named @name: when it is allocated, and when it is
 *		  released, just before it leaves the lookups (for users that
 *		  do not announce their code themselves)
 *
 * Define one per user with DEFINE_EXECSLOT_CACHE(); it must stay alive for
 * as long as the kernel runs.
 */
struct execslot_cache {
	const char *name;
	enum execmem_type type;
	bool perf_ksymbol;
};

#define DEFINE_EXECSLOT_CACHE(_var, _name, _type)			\
	struct execslot_cache _var = { .name = (_name), .type = (_type) }

#ifdef CONFIG_EXECSLOT

/*
 * Locking: the allocator writes slots with text_poke, under text_mutex, and
 * takes its own mutex inside text_mutex. The _locked variants are for
 * callers that hold text_mutex already (kprobes preparing a probe); the
 * plain ones take it.
 */

/**
 * execslot_alloc_locked - allocate an executable slot
 * @cache: the user
 * @size: bytes needed, 1 to PAGE_SIZE; the slot is rounded up to 16 bytes
 *	  and 16-byte aligned
 * @slot: where to store the slot's address
 *
 * The slot is filled with INT3. Write it with execslot_write_locked().
 *
 * Context: process context, text_mutex held. May sleep.
 * Return: 0, -EINVAL for a bad size or when 255 caches are registered
 * already, -ENOMEM when no memory is left.
 */
int execslot_alloc_locked(struct execslot_cache *cache, size_t size,
			  void **slot);

/**
 * execslot_write_locked - write into a slot with text_poke
 * @slot: address returned by execslot_alloc_locked()
 * @offset: where to write inside the slot
 * @src: bytes to write
 * @len: how many
 *
 * Not safe against concurrent execution of the bytes written: fill a slot
 * before publishing its address.
 *
 * Context: process context, text_mutex held. May sleep.
 * Return: 0, or -EINVAL if @slot is not a live slot or the range does not
 * fit inside it.
 */
int execslot_write_locked(void *slot, size_t offset, const void *src,
			  size_t len);

/**
 * execslot_free_locked - release a slot
 * @slot: address returned by execslot_alloc_locked()
 *
 * The caller guarantees that nothing executes the slot any more (for
 * trampolines: after the RCU-tasks grace periods). The slot is filled with
 * INT3 and given back; a page left empty goes back to execmem after an RCU
 * grace period.
 *
 * Context: process context, text_mutex held. May sleep.
 * Return: 0, or -EINVAL if @slot is not the start of a live slot.
 */
int execslot_free_locked(void *slot);

/**
 * execslot_alloc - execslot_alloc_locked(), taking text_mutex
 * @cache: the user
 * @size: bytes needed
 * @slot: where to store the slot's address
 *
 * Context: process context, text_mutex not held. May sleep.
 * Return: as execslot_alloc_locked().
 */
static inline int execslot_alloc(struct execslot_cache *cache, size_t size,
				 void **slot)
{
	guard(mutex)(&text_mutex);
	return execslot_alloc_locked(cache, size, slot);
}

/**
 * execslot_write - execslot_write_locked(), taking text_mutex
 * @slot: address returned by execslot_alloc()
 * @offset: where to write inside the slot
 * @src: bytes to write
 * @len: how many
 *
 * Context: process context, text_mutex not held. May sleep.
 * Return: as execslot_write_locked().
 */
static inline int execslot_write(void *slot, size_t offset, const void *src,
				 size_t len)
{
	guard(mutex)(&text_mutex);
	return execslot_write_locked(slot, offset, src, len);
}

/**
 * execslot_free - execslot_free_locked(), taking text_mutex
 * @slot: address returned by execslot_alloc()
 *
 * Context: process context, text_mutex not held. May sleep.
 * Return: as execslot_free_locked().
 */
static inline int execslot_free(void *slot)
{
	guard(mutex)(&text_mutex);
	return execslot_free_locked(slot);
}

/**
 * execslot_free_deferred - release a slot after an RCU grace period
 * @slot: address returned by execslot_alloc()
 *
 * For slots that a CPU may still be executing, with preemption disabled,
 * when the caller is done with them (kprobes instruction slots, which run
 * from the int3 handler, as the dirty slots of kprobes' own caches did):
 * the slot stays live, for lookups too, until an RCU grace period has
 * elapsed, which does not wait for preempted tasks; then a work item
 * fills it with INT3 and releases it as execslot_free() does.
 * execslot_flush_deferred() waits for that.
 *
 * Context: process context, with or without text_mutex. May sleep.
 * Return: 0, or -EINVAL if @slot is not the start of a live slot or is
 * already waiting.
 */
int execslot_free_deferred(void *slot);

/**
 * execslot_flush_deferred - wait for the slots freed with
 *	execslot_free_deferred() so far to be released
 *
 * Context: process context, text_mutex not held. May sleep.
 */
void execslot_flush_deferred(void);

int __execslot_get_kallsym(const struct execslot_cache *cache,
			   unsigned int *symnum, unsigned long *value,
			   unsigned long *size);

/**
 * execslot_get_kallsym - the slots of a cache, one by one, for kallsyms
 * @cache: the user
 * @symnum: index of the slot wanted; decreased by the number of slots of
 *	    @cache passed over
 * @value: where to store the slot's address
 * @size: where to store the slot's size
 *
 * Slots are walked in address order. Not from NMI context: it try-locks a
 * spinlock to keep its place between calls. kallsyms calls it from
 * process context.
 *
 * Return: 0 if @cache has a slot number *@symnum, -ERANGE otherwise.
 */
static inline int execslot_get_kallsym(const struct execslot_cache *cache,
				       unsigned int *symnum,
				       unsigned long *value,
				       unsigned long *size)
{
	int ret;

	rcu_read_lock();
	ret = __execslot_get_kallsym(cache, symnum, value, size);
	rcu_read_unlock();
	return ret;
}

/*
 * Lock-free lookups. The callers below hold rcu_read_lock(); the Rust side
 * only loads atomics and is blacklisted for kprobes.
 */
bool __execslot_contains(unsigned long addr);
bool __execslot_lookup(unsigned long addr, unsigned long *start,
		       unsigned long *size,
		       const struct execslot_cache **cache);

/**
 * execslot_contains - whether @addr lies inside a live slot
 * @addr: any address
 *
 * Any context, NMI included, where RCU is watching (kernel_text_address()
 * makes sure of it). The answer is a snapshot: the slot may go as soon as
 * this returns, unless the caller keeps it alive.
 *
 * Return: true if @addr lies inside a live slot.
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
 * @cache: where to store the cache the slot belongs to
 *
 * Any context, NMI included, where RCU is watching (kernel_text_address()
 * makes sure of it). The answer is a snapshot: the slot may go as soon as
 * this returns, unless the caller keeps it alive.
 *
 * Return: whether @addr lies in a live slot; the outputs are set only then.
 */
static inline bool execslot_lookup(unsigned long addr, unsigned long *start,
				   unsigned long *size,
				   const struct execslot_cache **cache)
{
	bool ret;

	rcu_read_lock();
	ret = __execslot_lookup(addr, start, size, cache);
	rcu_read_unlock();
	return ret;
}

#else /* !CONFIG_EXECSLOT */

static inline int execslot_alloc_locked(struct execslot_cache *cache,
					size_t size, void **slot)
{
	return -EOPNOTSUPP;
}

static inline int execslot_write_locked(void *slot, size_t offset,
					const void *src, size_t len)
{
	return -EOPNOTSUPP;
}

static inline int execslot_free_locked(void *slot)
{
	return -EOPNOTSUPP;
}

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

static inline int execslot_free_deferred(void *slot)
{
	return -EOPNOTSUPP;
}

static inline void execslot_flush_deferred(void) { }

static inline int execslot_get_kallsym(const struct execslot_cache *cache,
				       unsigned int *symnum,
				       unsigned long *value,
				       unsigned long *size)
{
	return -ERANGE;
}

static inline bool execslot_contains(unsigned long addr)
{
	return false;
}

static inline bool execslot_lookup(unsigned long addr, unsigned long *start,
				   unsigned long *size,
				   const struct execslot_cache **cache)
{
	return false;
}

#endif /* CONFIG_EXECSLOT */

#endif /* _LINUX_EXECSLOT_H */
