/*
 * internal.h -- what the library's .c files share and users never see:
 * how misuse is reported.
 *
 * Policy (docs/misuse.md lists every case):
 *   percpu_die()      corruption would follow if we went on (double free
 *                     of a slab object, a count gone negative): print one
 *                     line naming the function and the object, abort().
 *                     In every build: silent corruption is never an option.
 *   percpu_warn()     recoverable misuse the API reports by return value
 *                     anyway: one line on stderr (once per call site).
 *   PERCPU_DEBUG_ASSERT  internal invariants; compiled out with NDEBUG.
 */
#ifndef PERCPU_SRC_INTERNAL_H
#define PERCPU_SRC_INTERNAL_H

#include <stdbool.h>

__attribute__((noreturn, format(printf, 1, 2), cold))
void percpu_die(const char *fmt, ...);

__attribute__((format(printf, 1, 2), cold))
void percpu_warn(const char *fmt, ...);

#define percpu_warn_once(...)                                                  \
	do {                                                                   \
		static bool warned_;                                           \
		if (!__atomic_exchange_n(&warned_, true, __ATOMIC_RELAXED))    \
			percpu_warn(__VA_ARGS__);                              \
	} while (0)

#ifdef NDEBUG
#define PERCPU_DEBUG_ASSERT(cond, ...) ((void)0)
#else
#define PERCPU_DEBUG_ASSERT(cond, ...)                                         \
	do {                                                                   \
		if (__builtin_expect(!(cond), 0))                              \
			percpu_die(__VA_ARGS__);                               \
	} while (0)
#endif

#endif /* PERCPU_SRC_INTERNAL_H */
