/* SPDX-License-Identifier: MIT */
/*
 * percpu/arch/aarch64.h -- rseq critical sections for aarch64 (arm64).
 *
 * The thread's rseq area is glibc's: TPIDR_EL0 + __rseq_offset.  On
 * aarch64 the TLS layout is variant I and the area sits *below* the
 * thread pointer (__rseq_offset is -32 with glibc 2.36): the offset is a
 * signed long, added as such.  Fields used (struct rseq, the kernel ABI):
 * +0 cpu_id_start, +4 cpu_id, +8 rseq_cs.
 *
 * One section, as laid out below (x9, x10 scratch; the area's address
 * arrives in a register, computed once outside the retry loop):
 *
 *   __rseq_cs:           3: { version 0, flags 0, start 1f, len 2f-1f, abort 4f }
 *   __rseq_cs_ptr_array:    .quad 3b
 *   text:    adrp x9, 3b; add x9, x9, :lo12:3b; str x9, [rseq, #8]  arm
 *        1:  ldr w10, [rseq, #4]; cmp w10, cpu; b.ne 4f         still there?
 *            [ldar x10, [mode]; cbnz x10, mode_set]             mode check
 *            ldr x10, [slot]; add x10, x10, delta               the add ...
 *            str x10, [slot]                                    ... its commit
 *        2:
 *   __rseq_failure:  .inst 0xd428bc00  (RSEQ_SIG: brk #0x45e0, traps if run)
 *        4:  b abort
 *
 * Unlike x86 there is no add-to-memory: the section loads the slot, adds
 * and stores it back.  That is still one commit -- the store is the only
 * instruction with an effect visible outside the thread, and it is the
 * last one of the section; an abort anywhere before it (including between
 * the load and the store) leaves the slot untouched, and the restarted
 * section loads it afresh.  The slot is written only by sections running
 * on its CPU, so the load cannot be stale.  A constant delta that fits
 * ADD's immediate (0..4095, or shifted by 12) becomes one ("I"); any
 * other (negative: a release's -1) arrives in a register.
 *
 * Memory order (<percpu/arch/arch.h>): *mode is loaded with ldar, so the
 * store that commits cannot be seen before the load that allowed it.  The
 * commit itself is a plain str, not a release: nothing reads a per-CPU
 * word and then frees on its strength without first running
 * percpu_fence(), whose membarrier orders every thread's earlier accesses
 * (see the contract's memory-order paragraph).
 *
 * The conditional branch to the abort handler (b.ne, +-1 MiB) reaches
 * into __rseq_failure, which the linker places as an orphan section next
 * to .text: an object whose text is larger than that fails to link
 * ("relocation truncated to fit"), it cannot miscompile.  The kernel's
 * selftests and librseq use the same layout.
 *
 * rseq_cs is left pointing at the descriptor after the section (the
 * kernel clears it lazily), as on x86-64: hence -z nodelete.
 */
#ifndef PERCPU_ARCH_AARCH64_H
#define PERCPU_ARCH_AARCH64_H

/* The asm is laid out by hand, as in x86_64.h. */
/* clang-format off */

#include <stdint.h>
#include <sys/rseq.h>

#define PERCPU_ARCH_HAS_RSEQ 1

#ifdef __AARCH64EB__
#error "percpu: big-endian aarch64 has no rseq port (RSEQ_SIG differs in data)"
#endif

/* brk #0x45e0: glibc's and the kernel's aarch64 signature (code and, on
 * little-endian, data). */
#define PERCPU_A64_RSEQ_SIG "0xd428bc00"
#ifdef __cplusplus
static_assert(RSEQ_SIG == 0xd428bc00, "aarch64 rseq signature");
#else
_Static_assert(RSEQ_SIG == 0xd428bc00, "aarch64 rseq signature");
#endif

#ifdef PERCPU_TEST_INJECT
/* As PERCPU_X86_INJECT (see x86_64.h and <percpu/test_hooks.h>): spin
 * spins >= 0 times, or in gate mode store 1 to the gate and wait up to
 * -spins rounds for a controller's 2, aborting if it does not come. */
#define PERCPU_A64_INJECT                                                      \
	"mov x11, %[inject_spins]\n\t"                                         \
	"tbnz x11, #63, 6f\n\t"                                                \
	"5: subs x11, x11, #1\n\t"                                             \
	"b.gt 5b\n\t"                                                          \
	"b 7f\n\t"                                                             \
	"6: mov x10, #1\n\t"                                                   \
	"str x10, [%[inject_gate]]\n\t"                                        \
	"8: ldar x10, [%[inject_gate]]\n\t"                                    \
	"cmp x10, #2\n\t"                                                      \
	"b.eq 7f\n\t"                                                          \
	"yield\n\t"                                                            \
	"adds x11, x11, #1\n\t"                                                \
	"b.ne 8b\n\t"                                                          \
	"b 4f\n\t"                                                             \
	"7:\n\t"
#define PERCPU_A64_INJECT_INPUT                                                \
	, [inject_spins] "r"(PERCPU_TEST_INJECT_SPINS),                        \
	  [inject_gate] "r"(&PERCPU_TEST_INJECT_GATE)
#define PERCPU_A64_INJECT_CLOBBER , "x11"
#else
#define PERCPU_A64_INJECT ""
#define PERCPU_A64_INJECT_INPUT
#define PERCPU_A64_INJECT_CLOBBER
#endif

/* Descriptor, its pointer-array entry, arming, start label, cpu check. */
#define PERCPU_A64_RSEQ_ENTER                                                  \
	".pushsection __rseq_cs, \"aw\"\n\t"                                   \
	".balign 32\n\t"                                                       \
	"3:\n\t"                                                               \
	".long 0x0, 0x0\n\t"                                                   \
	".quad 1f, (2f - 1f), 4f\n\t"                                          \
	".popsection\n\t"                                                      \
	".pushsection __rseq_cs_ptr_array, \"aw\"\n\t"                         \
	".quad 3b\n\t"                                                         \
	".popsection\n\t"                                                      \
	"adrp x9, 3b\n\t"                                                      \
	"add x9, x9, :lo12:3b\n\t"                                             \
	"str x9, [%[rseq], #8]\n\t"                                            \
	"1:\n\t"                                                               \
	"ldr w10, [%[rseq], #4]\n\t"                                           \
	"cmp w10, %w[cpu]\n\t"                                                 \
	"b.ne 4f\n\t"

/* The add and its committing store (the section's last instruction). */
#define PERCPU_A64_RSEQ_COMMIT                                                 \
	"ldr x10, [%[slot]]\n\t"                                               \
	"add x10, x10, %[delta]\n\t"                                           \
	"str x10, [%[slot]]\n\t"

/* Post-commit label and the signed abort handler. */
#define PERCPU_A64_RSEQ_LEAVE(abort_label)                                     \
	"2:\n\t"                                                               \
	".pushsection __rseq_failure, \"ax\"\n\t"                              \
	".inst " PERCPU_A64_RSEQ_SIG "\n\t"                                    \
	"4:\n\t"                                                               \
	"b %l[" #abort_label "]\n\t"                                           \
	".popsection\n\t"

/* The thread pointer: TPIDR_EL0, readable at EL0 -- the value the kernel
 * saves and restores for the thread, so no syscall is needed.  Not
 * volatile: it never changes under a thread, so the compiler may read it
 * once per function (and hoist it out of a loop). */
static inline __attribute__((always_inline)) char *
percpu_a64_tpidr(void)
{
	char *tp;

	__asm__("mrs %0, tpidr_el0" : "=r"(tp));
	return tp;
}

/* glibc's rseq area of the calling thread (it may lie below tp). */
static inline __attribute__((always_inline)) char *
percpu_a64_rseq_area(void)
{
	return percpu_a64_tpidr() + __rseq_offset;
}

static inline __attribute__((always_inline)) uint32_t
percpu_arch_rseq_cpu_start(void)
{
	uint32_t cpu;

	__asm__ __volatile__("ldr %w0, [%1]"
	                     : "=r"(cpu)
	                     : "r"(percpu_a64_rseq_area()));
	return cpu;
}

static inline __attribute__((always_inline)) int32_t
percpu_arch_rseq_cpu_id(void)
{
	int32_t cpu;

	__asm__ __volatile__("ldr %w0, [%1, #4]"
	                     : "=r"(cpu)
	                     : "r"(percpu_a64_rseq_area()));
	return cpu;
}

static inline void *
percpu_arch_thread_pointer(void)
{
	return percpu_a64_tpidr();
}

static inline __attribute__((always_inline)) int
percpu_arch_rseq_add(void *slot, uint32_t cpu, int64_t delta)
{
	__asm__ goto(PERCPU_A64_RSEQ_ENTER
	             PERCPU_A64_INJECT
	             PERCPU_A64_RSEQ_COMMIT
	             PERCPU_A64_RSEQ_LEAVE(aborted)
	             : /* asm goto: no outputs */
	             : [rseq] "r"(percpu_a64_rseq_area()), [cpu] "r"(cpu),
	               [slot] "r"(slot), [delta] "rI"(delta)
	               PERCPU_A64_INJECT_INPUT
	             : "memory", "cc", "x9", "x10" PERCPU_A64_INJECT_CLOBBER
	             : aborted);
	return 0;
aborted:
	return -1;
}

static inline __attribute__((always_inline)) int
percpu_arch_rseq_add_if_zero(void *slot, uint32_t cpu, const uintptr_t *mode,
                             int64_t delta)
{
	__asm__ goto(PERCPU_A64_RSEQ_ENTER
	             "ldar x10, [%[mode]]\n\t"
	             "cbnz x10, %l[mode_set]\n\t"
	             PERCPU_A64_INJECT
	             PERCPU_A64_RSEQ_COMMIT
	             PERCPU_A64_RSEQ_LEAVE(aborted)
	             : /* asm goto: no outputs */
	             : [rseq] "r"(percpu_a64_rseq_area()), [cpu] "r"(cpu),
	               [slot] "r"(slot), [mode] "r"(mode), [delta] "rI"(delta)
	               PERCPU_A64_INJECT_INPUT
	             : "memory", "cc", "x9", "x10" PERCPU_A64_INJECT_CLOBBER
	             : aborted, mode_set);
	return 0;
mode_set:
	return 1;
aborted:
	return -1;
}

/* clang-format on */
#endif /* PERCPU_ARCH_AARCH64_H */
