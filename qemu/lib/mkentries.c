/*
 * mkentries DIR N TARGET: N entries in DIR, each named by 64 pseudo-random
 * hex digits (a digest's shape), all leading to TARGET: a symlink to
 * TARGET, then hard links to it, a new symlink every 50 000 names (ext4
 * allows 65 000 links per inode). Run by the provisioning boot (scenario
 * huge-files): the host's `mke2fs -d` inserts directory entries one by one
 * without an index and took more than 14 minutes for 100 000 of them; the
 * guest's ext4 (with dir_index) takes seconds. Prints what it made.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PER_INODE 50000

static uint64_t state = 0x76657269726f6f74ULL; /* "veriroot" */

static uint64_t splitmix64(void)
{
	uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: mkentries DIR N TARGET\n");
		return 2;
	}
	int dir = open(argv[1], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir < 0) {
		perror(argv[1]);
		return 1;
	}
	long n = atol(argv[2]);
	char name[65], first[65];
	long links = 0, symlinks = 0;
	for (long i = 0; i < n; i++) {
		for (int k = 0; k < 4; k++)
			snprintf(name + 16 * k, 17, "%016llx", (unsigned long long)splitmix64());
		int r;
		if (links == 0) {
			r = symlinkat(argv[3], dir, name);
			memcpy(first, name, sizeof(name));
			symlinks++;
		} else {
			r = linkat(dir, first, dir, name, 0);
		}
		if (r != 0) {
			fprintf(stderr, "mkentries: %s/%s: %s\n", argv[1], name, strerror(errno));
			return 1;
		}
		if (++links == PER_INODE)
			links = 0;
	}
	printf("mkentries: %ld entries in %s (%ld symlinks to %s, the rest hard links to them)\n",
	       n, argv[1], symlinks, argv[3]);
	return 0;
}
