/* SPDX-License-Identifier: MIT */
/*
 * fuzz_gate.c -- the deterministic fuzz gate's engine (fuzz_gate.h): the
 * PRNG, the mutator and the replay loop, shared by every harness's gate
 * so that one seed means the same inputs in each.
 */
#define _GNU_SOURCE
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/fuzz/fuzz_gate.h"

struct input {
	uint8_t *data;
	size_t size;
};

static uint64_t rng_state;

/* splitmix64: the whole sequence is fixed by the seed. */
static uint64_t rng(void)
{
	uint64_t z = (rng_state += UINT64_C(0x9e3779b97f4a7c15));

	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

static size_t below(size_t n)
{
	return n ? (size_t)(rng() % n) : 0;
}

static struct input read_file(const struct fuzz_gate *gate, const char *path)
{
	struct input in = { 0 };
	FILE *f = fopen(path, "rb");
	long len;

	if (!f || fseek(f, 0, SEEK_END) || (len = ftell(f)) < 0 || fseek(f, 0, SEEK_SET)) {
		fprintf(stderr, "%s: cannot read %s\n", gate->name, path);
		exit(2);
	}
	in.size = (size_t)len;
	in.data = malloc(in.size + 1);
	if (!in.data || fread(in.data, 1, in.size, f) != in.size) {
		fprintf(stderr, "%s: cannot read %s\n", gate->name, path);
		exit(2);
	}
	fclose(f);
	return in;
}

static void write_input(const struct fuzz_gate *gate, const char *path,
                        const uint8_t *data, size_t size)
{
	FILE *f;

	if (!path)
		return;
	f = fopen(path, "wb");
	if (!f || fwrite(data, 1, size, f) != size || fclose(f)) {
		fprintf(stderr, "%s: cannot write %s\n", gate->name, path);
		exit(2);
	}
}

/* One to four byte-level mutations of a corpus input, in place (buf holds
 * max_len bytes); returns the new size. */
static size_t mutate(uint8_t *buf, size_t size, size_t max_len,
                     const struct input *corpus, size_t nr)
{
	for (int m = 1 + (int)below(4); m > 0; m--) {
		switch (below(5)) {
		case 0: /* overwrite a byte */
			if (size)
				buf[below(size)] = (uint8_t)rng();
			break;
		case 1: /* insert a byte */
			if (size < max_len) {
				size_t at = below(size + 1);

				memmove(buf + at + 1, buf + at, size - at);
				buf[at] = (uint8_t)rng();
				size++;
			}
			break;
		case 2: /* erase a run */
			if (size > 1) {
				size_t at = below(size), n = 1 + below(size - at < 8 ? size - at : 8);

				memmove(buf + at, buf + at + n, size - at - n);
				size -= n;
			}
			break;
		case 3: { /* splice: a run of another input over the tail */
			const struct input *o = &corpus[below(nr)];
			size_t at = below(size + 1), from = below(o->size + 1);
			size_t n = o->size - from;

			if (at + n > max_len)
				n = max_len - at;
			memcpy(buf + at, o->data + from, n);
			if (at + n > size)
				size = at + n;
			break;
		}
		case 4: /* flip a bit */
			if (size)
				buf[below(size)] ^= (uint8_t)(1u << below(8));
			break;
		}
	}
	return size;
}

/* "NAME: WHAT (COUNTS)\n", flushed: the gate's progress lines, in the log
 * before an input that kills the process. */
static void report(const struct fuzz_gate *gate, const char *what)
{
	printf("%s: %s (", gate->name, what);
	gate->print_counts(stdout);
	printf(")\n");
	fflush(stdout);
}

int fuzz_gate_main(const struct fuzz_gate *gate, int argc, char **argv)
{
	unsigned long long seed = 0, runs = 0;
	size_t max_len = gate->default_max_len, nr = 0;
	const char *input_file = NULL;
	struct input *corpus = calloc((size_t)argc, sizeof(*corpus));
	uint8_t *buf;
	bool have_seed = false, have_runs = false;
	char what[128];

	if (!corpus)
		return 2;
	for (int i = 1; i < argc; i++) {
		if (!strncmp(argv[i], "--seed=", 7)) {
			seed = strtoull(argv[i] + 7, NULL, 0);
			have_seed = true;
		} else if (!strncmp(argv[i], "--runs=", 7)) {
			runs = strtoull(argv[i] + 7, NULL, 0);
			have_runs = true;
		} else if (!strncmp(argv[i], "--max-len=", 10)) {
			max_len = strtoull(argv[i] + 10, NULL, 0);
		} else if (!strncmp(argv[i], "--input-file=", 13)) {
			input_file = argv[i] + 13;
		} else if (argv[i][0] == '-') {
			fprintf(stderr, "%s: unknown argument %s\n", gate->name, argv[i]);
			return 2;
		} else {
			corpus[nr++] = read_file(gate, argv[i]);
		}
	}
	if (!have_seed || !have_runs || !nr || !max_len) {
		fprintf(stderr, "usage: %s --seed=S --runs=N [--max-len=L] "
		                "[--input-file=PATH] CORPUS_FILE...\n",
		        gate->name);
		return 2;
	}
	buf = malloc(max_len);
	if (!buf)
		return 2;

	printf("%s: seed %llu, %zu corpus inputs, then %llu mutated inputs\n",
	       gate->name, seed, nr, runs);
	fflush(stdout);
	for (size_t i = 0; i < nr; i++) {
		write_input(gate, input_file, corpus[i].data, corpus[i].size);
		gate->run_input(corpus[i].data, corpus[i].size);
	}
	report(gate, "corpus replayed clean");
	rng_state = seed;
	for (unsigned long long r = 0; r < runs; r++) {
		const struct input *base = &corpus[below(nr)];
		size_t size = base->size < max_len ? base->size : max_len;

		memcpy(buf, base->data, size);
		size = mutate(buf, size, max_len, corpus, nr);
		write_input(gate, input_file, buf, size);
		gate->run_input(buf, size);
	}
	snprintf(what, sizeof(what), "%zu + %llu inputs clean", nr, runs);
	report(gate, what);
	if (input_file)
		remove(input_file);
	for (size_t i = 0; i < nr; i++)
		free(corpus[i].data);
	free(corpus);
	free(buf);
	return 0;
}
