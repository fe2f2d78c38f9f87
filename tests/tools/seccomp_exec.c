/* SPDX-License-Identifier: MIT */
/*
 * seccomp_exec.c -- run a program with rseq and/or membarrier unavailable.
 *
 *   seccomp_exec [--deny-rseq] [--deny-membarrier] [--] PROGRAM [ARGS...]
 *
 * With no --deny flag both are denied.  rseq(2) then fails with ENOSYS, as on
 * a kernel older than 4.18; membarrier(2) fails with EPERM, as under a
 * container's seccomp profile (Docker's default answer to a refused call).
 * Everything else is allowed.  This lets tests exercise the library's
 * fallback paths on a machine that has both system calls.
 *
 * Why a launcher that installs the filter and then execs, rather than a
 * filter installed by the test itself: glibc (>= 2.35) registers rseq for
 * the main thread while the process starts, and for each new thread in
 * pthread_create.  A filter installed mid-process leaves the main thread
 * registered, and the next pthread_create aborts with "rseq registration
 * failed".  A seccomp filter survives execve, so installing it here means
 * the exec'd program's glibc meets ENOSYS from its very first rseq call,
 * records that rseq is unavailable (__rseq_size == 0, cpu_id == -2) and
 * runs every thread without it -- exactly like a kernel without rseq.
 *
 * The filter is hand-written classic BPF (no libseccomp dependency).  It
 * checks the arch field before trusting the syscall number, since numbers
 * differ per ABI: x86-64 and x32 share the numbers of these two calls (x32
 * sets bit 30), i386 (int 0x80) has its own; any other arch is let through.
 *
 * Exit status: the program's own, or
 *   77   not x86-64 (the "skip" status of automake-style test drivers)
 *   125  usage error, or the filter could not be installed
 *   126  PROGRAM found but could not be executed
 *   127  PROGRAM not found
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>

#define EXIT_WRONG_ARCH 77
#define EXIT_LAUNCHER_FAILED 125
#define EXIT_CANNOT_EXEC 126
#define EXIT_NOT_FOUND 127

static void usage(FILE *to)
{
	fputs("usage: seccomp_exec [--deny-rseq] [--deny-membarrier] [--] "
	      "PROGRAM [ARGS...]\n"
	      "  --deny-rseq        rseq(2) fails with ENOSYS\n"
	      "  --deny-membarrier  membarrier(2) fails with EPERM\n"
	      "  (no --deny flag: both)\n",
	      to);
}

#if defined(__x86_64__)

/* System call numbers from the kernel's syscall tables; written out rather
 * than taken from <sys/syscall.h> because that header only knows the ABI we
 * are compiled for. */
#define X86_64_NR_MEMBARRIER 324
#define X86_64_NR_RSEQ 334
#define X32_SYSCALL_BIT 0x40000000u
#define I386_NR_MEMBARRIER 375
#define I386_NR_RSEQ 386

/* Instruction slots, so that jump offsets are computed, not hand-counted. */
enum {
	LOAD_ARCH,
	IS_X86_64,
	LOAD_NR_64,
	STRIP_X32_BIT,
	IS_RSEQ_64,
	IS_MEMBARRIER_64,
	IS_I386,
	LOAD_NR_32,
	IS_RSEQ_32,
	IS_MEMBARRIER_32,
	RETURN_ALLOW,
	RETURN_FOR_RSEQ,
	RETURN_FOR_MEMBARRIER,
	FILTER_LENGTH
};

/* BPF jump offsets count from the instruction after the jump. */
#define TO(from, to) ((unsigned char)((to) - (from)-1))
#define LOAD(field) \
	BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, field))
#define IF_EQUAL(at, value, then, otherwise)                       \
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (value), TO(at, then), \
	         TO(at, otherwise))

static int install_filter(bool deny_rseq, bool deny_membarrier)
{
	struct sock_filter code[FILTER_LENGTH] = {
		[LOAD_ARCH] = LOAD(arch),
		[IS_X86_64] = IF_EQUAL(IS_X86_64, AUDIT_ARCH_X86_64,
		                       LOAD_NR_64, IS_I386),
		[LOAD_NR_64] = LOAD(nr),
		[STRIP_X32_BIT] = BPF_STMT(BPF_ALU | BPF_AND | BPF_K,
		                           ~X32_SYSCALL_BIT),
		[IS_RSEQ_64] = IF_EQUAL(IS_RSEQ_64, X86_64_NR_RSEQ,
		                        RETURN_FOR_RSEQ, IS_MEMBARRIER_64),
		[IS_MEMBARRIER_64] = IF_EQUAL(IS_MEMBARRIER_64,
		                              X86_64_NR_MEMBARRIER,
		                              RETURN_FOR_MEMBARRIER,
		                              RETURN_ALLOW),
		[IS_I386] = IF_EQUAL(IS_I386, AUDIT_ARCH_I386, LOAD_NR_32,
		                     RETURN_ALLOW),
		[LOAD_NR_32] = LOAD(nr),
		[IS_RSEQ_32] = IF_EQUAL(IS_RSEQ_32, I386_NR_RSEQ,
		                        RETURN_FOR_RSEQ, IS_MEMBARRIER_32),
		[IS_MEMBARRIER_32] = IF_EQUAL(IS_MEMBARRIER_32,
		                              I386_NR_MEMBARRIER,
		                              RETURN_FOR_MEMBARRIER,
		                              RETURN_ALLOW),
		[RETURN_ALLOW] = BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		/* An undenied call keeps its slot and simply returns ALLOW, so
		 * the program's shape never depends on the flags. */
		[RETURN_FOR_RSEQ] = BPF_STMT(BPF_RET | BPF_K, deny_rseq
		                                                      ? SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA)
		                                                      : SECCOMP_RET_ALLOW),
		[RETURN_FOR_MEMBARRIER] = BPF_STMT(BPF_RET | BPF_K,
		                                   deny_membarrier
		                                           ? SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)
		                                           : SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = FILTER_LENGTH, .filter = code };

	/* Without CAP_SYS_ADMIN the kernel accepts a filter only from a
	 * process that can never gain privileges (e.g. through a setuid
	 * exec), so the filter cannot be used to confuse a privileged
	 * program. */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
		int err = errno;

		perror("seccomp_exec: prctl(PR_SET_NO_NEW_PRIVS)");
		return -err;
	}
	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) != 0) {
		int err = errno;

		perror("seccomp_exec: prctl(PR_SET_SECCOMP)");
		return -err;
	}
	return 0;
}

int main(int argc, char **argv)
{
	bool deny_rseq = false, deny_membarrier = false;
	int i;

	/* Parse by hand: getopt would permute and swallow PROGRAM's own
	 * options. */
	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "--") == 0) {
			i++;
			break;
		} else if (strcmp(argv[i], "--deny-rseq") == 0) {
			deny_rseq = true;
		} else if (strcmp(argv[i], "--deny-membarrier") == 0) {
			deny_membarrier = true;
		} else if (strcmp(argv[i], "--help") == 0 ||
		           strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			return 0;
		} else {
			fprintf(stderr, "seccomp_exec: unknown option '%s'\n",
			        argv[i]);
			usage(stderr);
			return EXIT_LAUNCHER_FAILED;
		}
	}
	if (i >= argc) {
		fputs("seccomp_exec: no PROGRAM given\n", stderr);
		usage(stderr);
		return EXIT_LAUNCHER_FAILED;
	}
	if (!deny_rseq && !deny_membarrier)
		deny_rseq = deny_membarrier = true;

	if (install_filter(deny_rseq, deny_membarrier) != 0)
		return EXIT_LAUNCHER_FAILED;
	execvp(argv[i], &argv[i]);
	int err = errno;

	fprintf(stderr, "seccomp_exec: cannot execute '%s': %s\n", argv[i],
	        strerror(err));
	return err == ENOENT ? EXIT_NOT_FOUND : EXIT_CANNOT_EXEC;
}

#else /* !__x86_64__ */

int main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fputs("seccomp_exec: only x86-64 is supported (the filter hard-codes "
	      "x86-64 system call numbers); skipping\n",
	      stderr);
	return EXIT_WRONG_ARCH;
}

#endif
