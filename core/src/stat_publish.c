/* SPDX-License-Identifier: MIT */
/*
 * stat_publish.c -- the stats segment's writer (format: <percpu/stat_format.h>).
 * Placeholder until the writer lands: publication is refused.
 */
#include <errno.h>

#include <percpu/counter_sysctl.h>

int counter_sysctl_publish(void)
{
	return -ENOSYS;
}

int counter_sysctl_published(void)
{
	return 0;
}
