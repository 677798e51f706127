/* SPDX-License-Identifier: GPL-2.0 */
/*
 * ftrace trampolines in sub-page executable slots, built by
 * arch/x86/kernel/ftrace_tramp.rs.
 */
#ifndef _ASM_X86_FTRACE_TRAMP_H
#define _ASM_X86_FTRACE_TRAMP_H

#include <linux/execslot.h>

/**
 * struct ftrace_tramp_template - code that a trampoline is copied from
 * @start:	first byte of ftrace_caller or ftrace_regs_caller
 * @end:	the template's final return, which is not copied
 * @op_ptr:	the "movq function_trace_op(%rip), %rdx" to make read the ops
 * @call:	the call of the tracer function
 * @jnz:	a 2-byte jnz to replace with a NOP, or NULL
 */
struct ftrace_tramp_template {
	const void *start;
	const void *end;
	const void *op_ptr;
	const void *call;
	const void *jnz;
};

/**
 * x86_ftrace_tramp_create() - build a trampoline in a slot
 * @cache:	slot cache to allocate from
 * @tmpl:	template to copy
 * @ops:	the ftrace_ops whose pointer the trampoline passes to @func
 * @func:	the function the trampoline calls
 * @tramp:	set to the trampoline's address on success
 * @size:	set to the trampoline's size in bytes on success
 *
 * Copies @tmpl into a slot of @cache, relocates its RIP-relative operands and
 * relative branches, points its op_ptr load at the ops pointer stored after
 * the code, calls @func and appends the return. The slot is executable and
 * read-only from the start; release it with execslot_free().
 *
 * Context: process context, text_mutex held. May sleep.
 * Return: 0, -ENOMEM, or -EINVAL if the template cannot be relocated.
 */
int x86_ftrace_tramp_create(struct execslot_cache *cache,
			    const struct ftrace_tramp_template *tmpl,
			    const void *ops, const void *func,
			    unsigned long *tramp, unsigned int *size);

/**
 * x86_ftrace_tramp_return_thunk() - how a trampoline returns
 * @ret: address of the trampoline's return instruction
 *
 * Return: the return thunk to jump to at @ret, or NULL for a plain RET.
 */
const void *x86_ftrace_tramp_return_thunk(const void *ret);

#endif /* _ASM_X86_FTRACE_TRAMP_H */
