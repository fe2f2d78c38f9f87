/* SPDX-License-Identifier: MIT */
/*
 * report.c -- the one place that prints on the library's behalf.
 * Messages start with "percpu: " so they are easy to find in a log.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"

static void vreport(const char *fmt, va_list ap)
{
	char line[512];

	vsnprintf(line, sizeof(line), fmt, ap);
	fprintf(stderr, "percpu: %s\n", line);
}

void percpu_die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreport(fmt, ap);
	va_end(ap);
	abort();
}

void percpu_warn(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreport(fmt, ap);
	va_end(ap);
}
