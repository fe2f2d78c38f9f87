/* SPDX-License-Identifier: MIT */
/*
 * test_hooks.c -- the variables test builds (-DPERCPU_TEST_INJECT) read
 * from inside the inline fast paths.  They live in the library in every
 * build so that test binaries and production libraries link alike; a
 * build without PERCPU_TEST_INJECT never reads them.
 */
volatile long percpu_test_inject_spins;
void (*volatile percpu_test_inject_hook)(void);
unsigned long percpu_test_aborts;
