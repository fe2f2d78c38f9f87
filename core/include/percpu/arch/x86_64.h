/* SPDX-License-Identifier: MIT */
/*
 * percpu/arch/x86_64.h -- rseq critical sections for x86-64.
 *
 * The thread's rseq area is glibc's: %fs:__rseq_offset.  Fields used
 * (struct rseq, the kernel ABI): +0 cpu_id_start, +4 cpu_id, +8 rseq_cs.
 *
 * One section, as laid out below:
 *
 *   __rseq_cs:           3: { version 0, flags 0, start 1f, len 2f-1f, abort 4f }
 *   __rseq_cs_ptr_array:    .quad 3b   (lets debuggers/DBI tools find it)
 *   text:    leaq 3b(%rip), %rax; movq %rax, %fs:8(off)     arm
 *        1:  cmpl cpu, %fs:4(off); jnz 4f                    still there?
 *            [cmpq $0, (mode); jnz slow]                     mode check
 *            addq delta, (slot)                              the commit
 *        2:
 *   __rseq_failure:  ud1 RSEQ_SIG(%rip),%edi  (the signature; traps if run)
 *        4:  jmp abort
 *
 * Why this form (docs/design.md, "Why rseq"): the cost of the whole
 * section is set by the committing instruction.  The slot address arrives
 * in one register (the caller computed base + cpu << shift) and a constant
 * delta becomes an immediate ("e" constraint after inlining): 0.56 ns
 * against 2.17 ns for an indexed address, measured when the form was
 * chosen; bazel run -c opt //benchmarks:scaling measures the add today.
 *
 * Comparing cpu_id against the cpu the caller prepared with also rejects
 * threads without a registration (cpu_id is -1/-2 then), so the common
 * path needs no "is rseq on?" test: an unregistered thread aborts at the
 * compare and the caller's slow path notices cpu_id < 0.
 *
 * rseq_cs is left pointing at the descriptor after the section (the
 * kernel clears it lazily).  That is why the shared library is linked
 * -z nodelete: unloading it would leave rseq_cs dangling.
 */
#ifndef PERCPU_ARCH_X86_64_H
#define PERCPU_ARCH_X86_64_H

/* The asm is laid out by hand (an instruction a line, operand macros on
 * lines of their own, backslashes at column 80); clang-format 14 would
 * break before every inline-asm colon and join the operand macros. */
/* clang-format off */

#include <stdint.h>
#include <sys/rseq.h>

#define PERCPU_ARCH_HAS_RSEQ 1

#define PERCPU_X86_RSEQ_SIG "0x53053053"
#ifdef __cplusplus
static_assert(RSEQ_SIG == 0x53053053, "x86-64 rseq signature");
#else
_Static_assert(RSEQ_SIG == 0x53053053, "x86-64 rseq signature");
#endif

#ifdef PERCPU_TEST_INJECT
/*
 * spins >= 0: spin that many times.  spins < 0 (gate mode, see
 * <percpu/test_hooks.h>): store 1 to the gate ("past the checks"), then wait up to
 * -spins rounds for a controller to store 2 ("go") before committing; a
 * section not released within the bound aborts instead of committing, so
 * a commit in gate mode always follows the controller's "go".
 */
#define PERCPU_X86_INJECT                                                      \
	"movq %[inject_spins], %%rcx\n\t"                                      \
	"testq %%rcx, %%rcx\n\t"                                               \
	"js 6f\n\t"                                                            \
	"5: subq $1, %%rcx\n\t"                                                \
	"jg 5b\n\t"                                                            \
	"jmp 7f\n\t"                                                           \
	"6: movq $1, (%[inject_gate])\n\t"                                     \
	"8: cmpq $2, (%[inject_gate])\n\t"                                     \
	"je 7f\n\t"                                                            \
	"pause\n\t"                                                            \
	"addq $1, %%rcx\n\t"                                                   \
	"jnz 8b\n\t"                                                           \
	"jmp 4f\n\t"                                                           \
	"7:\n\t"
#define PERCPU_X86_INJECT_INPUT                                                \
	, [inject_spins] "r"(PERCPU_TEST_INJECT_SPINS),                        \
	  [inject_gate] "r"(&PERCPU_TEST_INJECT_GATE)
#define PERCPU_X86_INJECT_CLOBBER , "rcx"
#else
#define PERCPU_X86_INJECT ""
#define PERCPU_X86_INJECT_INPUT
#define PERCPU_X86_INJECT_CLOBBER
#endif

/* Descriptor, its pointer-array entry, arming, start label, cpu check. */
#define PERCPU_X86_RSEQ_ENTER                                                  \
	".pushsection __rseq_cs, \"aw\"\n\t"                                   \
	".balign 32\n\t"                                                       \
	"3:\n\t"                                                               \
	".long 0x0, 0x0\n\t"                                                   \
	".quad 1f, (2f - 1f), 4f\n\t"                                          \
	".popsection\n\t"                                                      \
	".pushsection __rseq_cs_ptr_array, \"aw\"\n\t"                         \
	".quad 3b\n\t"                                                         \
	".popsection\n\t"                                                      \
	"leaq 3b(%%rip), %%rax\n\t"                                            \
	"movq %%rax, %%fs:8(%[rseq_off])\n\t"                                  \
	"1:\n\t"                                                               \
	"cmpl %[cpu], %%fs:4(%[rseq_off])\n\t"                                 \
	"jnz 4f\n\t"

/* Post-commit label and the signed abort handler. */
#define PERCPU_X86_RSEQ_LEAVE(abort_label)                                     \
	"2:\n\t"                                                               \
	".pushsection __rseq_failure, \"ax\"\n\t"                              \
	".byte 0x0f, 0xb9, 0x3d\n\t"                                           \
	".long " PERCPU_X86_RSEQ_SIG "\n\t"                                    \
	"4:\n\t"                                                               \
	"jmp %l[" #abort_label "]\n\t"                                         \
	".popsection\n\t"

static inline __attribute__((always_inline)) uint32_t
percpu_arch_rseq_cpu_start(void)
{
	uint32_t cpu;

	__asm__ __volatile__("movl %%fs:(%1), %0"
	                     : "=r"(cpu)
	                     : "r"(__rseq_offset));
	return cpu;
}

static inline __attribute__((always_inline)) int32_t
percpu_arch_rseq_cpu_id(void)
{
	int32_t cpu;

	__asm__ __volatile__("movl %%fs:4(%1), %0"
	                     : "=r"(cpu)
	                     : "r"(__rseq_offset));
	return cpu;
}

/*
 * The thread pointer (the %fs base), asked of the kernel with
 * arch_prctl(ARCH_GET_FS): %fs:0, the ABI's copy of it, reads 0 in a raw
 * clone() thread's zero-filled TLS block.  Slow paths only (a syscall):
 * the registration probe of <percpu/cpu.h> needs the rseq area's address.
 */
static inline void *
percpu_arch_thread_pointer(void)
{
	unsigned long base = 0;
	long rc;

	__asm__ __volatile__("syscall"
	                     : "=a"(rc)
	                     : "0"(158L /* SYS_arch_prctl */),
	                       "D"(0x1003L /* ARCH_GET_FS */), "S"(&base)
	                     : "rcx", "r11", "memory");
	return rc == 0 ? (void *)base : (void *)0;
}

static inline __attribute__((always_inline)) int
percpu_arch_rseq_add(void *slot, uint32_t cpu, int64_t delta)
{
	__asm__ goto(PERCPU_X86_RSEQ_ENTER
	             PERCPU_X86_INJECT
	             "addq %[delta], (%[slot])\n\t"
	             PERCPU_X86_RSEQ_LEAVE(aborted)
	             : /* asm goto: no outputs */
	             : [rseq_off] "r"(__rseq_offset), [cpu] "r"(cpu),
	               [slot] "r"(slot), [delta] "er"(delta)
	               PERCPU_X86_INJECT_INPUT
	             : "memory", "cc", "rax" PERCPU_X86_INJECT_CLOBBER
	             : aborted);
	return 0;
aborted:
	return -1;
}

static inline __attribute__((always_inline)) int
percpu_arch_rseq_add_if_zero(void *slot, uint32_t cpu, const uintptr_t *mode,
                             int64_t delta)
{
	__asm__ goto(PERCPU_X86_RSEQ_ENTER
	             "cmpq $0, (%[mode])\n\t"
	             "jnz %l[mode_set]\n\t"
	             PERCPU_X86_INJECT
	             "addq %[delta], (%[slot])\n\t"
	             PERCPU_X86_RSEQ_LEAVE(aborted)
	             : /* asm goto: no outputs */
	             : [rseq_off] "r"(__rseq_offset), [cpu] "r"(cpu),
	               [slot] "r"(slot), [mode] "r"(mode), [delta] "er"(delta)
	               PERCPU_X86_INJECT_INPUT
	             : "memory", "cc", "rax" PERCPU_X86_INJECT_CLOBBER
	             : aborted, mode_set);
	return 0;
mode_set:
	return 1;
aborted:
	return -1;
}

/* clang-format on */
#endif /* PERCPU_ARCH_X86_64_H */
