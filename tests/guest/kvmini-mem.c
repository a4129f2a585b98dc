/* SPDX-License-Identifier: MIT */
/*
 * kvmini-mem: a memory-dirtying workload that checks itself, for the
 * migration tests. Built static into the test initramfs by
 * tests/guest/build-initrd.sh.
 *   kvmini-mem MIB [MIB_PER_S]
 * Locks MIB MiB and fills it with generation 1 of a pattern that depends on
 * the generation and each word's offset; then, chunk by chunk (1 MiB), checks
 * that the chunk still holds the previous generation and rewrites it with the
 * next, at about MIB_PER_S MiB per second (default 8: a rate pre-copy
 * converges against even in the nested test host). A page a migration lost or
 * sent stale shows as a word that does not match.
 * Prints "KVMINI-MEM-PASS gen=G sum=S" after each whole pass (S: a checksum
 * of the region as just verified) and, at the first wrong word,
 * "KVMINI-MEM-BAD gen=G offset=O want=W saw=V", then exits 1.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define CHUNK (1u << 20)

static uint64_t mix(uint64_t x)
{
	/* splitmix64's finaliser: every bit of x affects every bit of the word */
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static uint64_t word(uint64_t gen, uint64_t index)
{
	return mix(gen << 40 ^ index);
}

static void sleep_ns(long ns)
{
	struct timespec t = {ns / 1000000000L, ns % 1000000000L};
	nanosleep(&t, NULL);
}

int main(int argc, char **argv)
{
	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: kvmini-mem MIB [MIB_PER_S]\n");
		return 2;
	}
	size_t mib = strtoul(argv[1], NULL, 0);
	double rate = argc > 2 ? strtod(argv[2], NULL) : 8;
	if (mib == 0 || mib > 4096 || !(rate > 0)) {
		fprintf(stderr, "kvmini-mem: bad size or rate\n");
		return 2;
	}
	size_t words = mib * CHUNK / 8, chunk_words = CHUNK / 8;
	uint64_t *m = mmap(NULL, mib * CHUNK, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (m == MAP_FAILED) {
		perror("kvmini-mem: mmap");
		return 1;
	}
	mlock(m, mib * CHUNK); /* best effort: keeps the region out of swap (there is none) */
	for (size_t i = 0; i < words; i++)
		m[i] = word(1, i);
	long pause_ns = (long)(1e9 / rate);
	for (uint64_t gen = 2;; gen++) {
		uint64_t sum = 0;
		for (size_t c = 0; c < words; c += chunk_words) {
			for (size_t i = c; i < c + chunk_words; i++) {
				uint64_t want = word(gen - 1, i);
				if (m[i] != want) {
					printf(
					    "KVMINI-MEM-BAD gen=%llu offset=%zu want=%016llx saw=%016llx\n",
					    (unsigned long long)gen - 1, i * 8, (unsigned long long)want,
					    (unsigned long long)m[i]);
					fflush(stdout);
					return 1;
				}
				sum = sum * 31 + m[i];
				m[i] = word(gen, i);
			}
			sleep_ns(pause_ns);
		}
		printf("KVMINI-MEM-PASS gen=%llu sum=%016llx\n", (unsigned long long)gen - 1,
		       (unsigned long long)sum);
		fflush(stdout);
	}
}
