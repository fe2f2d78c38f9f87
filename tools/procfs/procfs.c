/* tools/procfs/procfs.c -- see procfs.h. */
#include <stdio.h>

#include "tools/procfs/procfs.h"

long procfs_vmrss_kib(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kib = -1;

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld", &kib) == 1)
			break;
	if (f)
		fclose(f);
	return kib;
}
