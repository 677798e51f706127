// SPDX-License-Identifier: GPL-2.0
/*
 * ksymwatch: runs two shell commands and reports the perf ksymbol events
 * (PERF_RECORD_KSYMBOL) of the symbols named NAME that they cause, the way
 * perf record sees them: through a per-CPU side-band ring buffer.
 *
 * For every unregister event it also says whether the address was still
 * listed in SLOTS (/sys/kernel/debug/execslot/slots) when the event was
 * read: a symbol's unregister event must come when the code really goes,
 * not while it stays live.
 *
 *   ksymwatch NAME SLOTS SETUP_CMD REMOVE_CMD TIMEOUT_S
 *
 * Prints "register ADDR LEN" and "unregister ADDR LEN listed=0|1" lines,
 * then "done"; exits 2 on a setup error.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/perf_event.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_CPUS	64
#define DATA_PAGES	16

struct ring {
	int fd;
	struct perf_event_mmap_page *meta;
	unsigned char *data;
	size_t size;
};

static struct ring rings[MAX_CPUS];
static int nr_rings;

static int open_ring(int cpu)
{
	struct perf_event_attr attr;
	long page = sysconf(_SC_PAGESIZE);
	struct ring *r = &rings[nr_rings];
	void *p;

	memset(&attr, 0, sizeof(attr));
	attr.size = sizeof(attr);
	attr.type = PERF_TYPE_SOFTWARE;
	attr.config = PERF_COUNT_SW_DUMMY;
	attr.ksymbol = 1;
	attr.watermark = 1;
	attr.wakeup_watermark = 1;
	r->fd = syscall(SYS_perf_event_open, &attr, -1, cpu, -1, 0);
	if (r->fd < 0)
		return -errno;
	r->size = DATA_PAGES * page;
	p = mmap(NULL, (DATA_PAGES + 1) * page, PROT_READ | PROT_WRITE,
		 MAP_SHARED, r->fd, 0);
	if (p == MAP_FAILED)
		return -errno;
	r->meta = p;
	r->data = (unsigned char *)p + page;
	nr_rings++;
	return 0;
}

static int listed(const char *slots, unsigned long long addr)
{
	char line[256];
	FILE *f = fopen(slots, "r");
	int found = 0;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (strtoull(line, NULL, 16) == addr)
			found = 1;
	fclose(f);
	return found;
}

/* Reads every record of @r; returns the number of unregister events of @name. */
static int drain(struct ring *r, const char *name, const char *slots)
{
	uint64_t head = __atomic_load_n(&r->meta->data_head, __ATOMIC_ACQUIRE);
	uint64_t tail = r->meta->data_tail;
	unsigned char buf[512];
	int unreg = 0;

	while (tail < head) {
		struct perf_event_header h;
		size_t i;

		for (i = 0; i < sizeof(h); i++)
			((unsigned char *)&h)[i] = r->data[(tail + i) % r->size];
		if (h.size < sizeof(h) || h.size > sizeof(buf))
			break;
		for (i = 0; i < h.size; i++)
			buf[i] = r->data[(tail + i) % r->size];
		tail += h.size;
		if (h.type == PERF_RECORD_KSYMBOL) {
			uint64_t addr;
			uint32_t len;
			uint16_t flags;
			const char *sym = (const char *)buf + sizeof(h) + 16;

			memcpy(&addr, buf + sizeof(h), 8);
			memcpy(&len, buf + sizeof(h) + 8, 4);
			memcpy(&flags, buf + sizeof(h) + 14, 2);
			if (strncmp(sym, name, h.size - sizeof(h) - 16))
				continue;
			if (flags & PERF_RECORD_KSYMBOL_FLAGS_UNREGISTER) {
				printf("unregister %#llx %u listed=%d\n",
				       (unsigned long long)addr, len,
				       listed(slots, addr));
				unreg++;
			} else {
				printf("register %#llx %u\n",
				       (unsigned long long)addr, len);
			}
		}
	}
	__atomic_store_n(&r->meta->data_tail, tail, __ATOMIC_RELEASE);
	return unreg;
}

int main(int argc, char **argv)
{
	int cpus, cpu, i, status, unreg = 0;
	struct timespec t0, t;
	pid_t child;

	if (argc != 6) {
		fprintf(stderr, "usage: %s NAME SLOTS SETUP_CMD REMOVE_CMD TIMEOUT_S\n", argv[0]);
		return 2;
	}
	cpus = sysconf(_SC_NPROCESSORS_ONLN);
	for (cpu = 0; cpu < cpus && cpu < MAX_CPUS; cpu++) {
		int err = open_ring(cpu);

		if (err) {
			fprintf(stderr, "perf_event_open(cpu %d): %s\n", cpu, strerror(-err));
			return 2;
		}
	}
	if (system(argv[3])) {
		fprintf(stderr, "setup command failed: %s\n", argv[3]);
		return 2;
	}
	for (i = 0; i < nr_rings; i++)
		drain(&rings[i], argv[1], argv[2]);
	fflush(stdout);
	/*
	 * Remove in a child while this process polls the rings: an unregister
	 * event is read, and the slots listed, as soon as it is written.
	 */
	child = fork();
	if (child < 0)
		return 2;
	if (child == 0) {
		execl("/bin/sh", "sh", "-c", argv[4], (char *)NULL);
		_exit(127);
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	do {
		for (i = 0; i < nr_rings; i++)
			unreg += drain(&rings[i], argv[1], argv[2]);
		fflush(stdout);
		clock_gettime(CLOCK_MONOTONIC, &t);
	} while (!unreg && t.tv_sec - t0.tv_sec < atoi(argv[5]));
	if (waitpid(child, &status, 0) != child || !WIFEXITED(status) ||
	    WEXITSTATUS(status)) {
		fprintf(stderr, "remove command failed: %s\n", argv[4]);
		return 2;
	}
	printf("done unregister=%d\n", unreg);
	return 0;
}
