/* SPDX-License-Identifier: MIT */
/*
 * An example test harness on libkvmini: boot a guest, run a command through
 * its console, check the output, shut it down. `make check` builds it and
 * runs it (tests/integration/t_example_harness.sh) on the test initramfs,
 * whose init starts a shell (prompt "kvmini# ") on the console when no test
 * is named.
 *
 *   harness KERNEL INITRD [VMS]
 *
 * With VMS > 1, that many VMs run at once in this one process, each driven
 * by its own thread: the library keeps no global state. Exit status 0 when
 * every VM printed the right answer and powered off.
 *
 * Build against an installed libkvmini:
 *   cc harness.c $(pkg-config --cflags --libs kvmini) -lpthread
 */
#include <kvmini.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BOOT_TIMEOUT_MS 300000 /* a nested (emulated) boot takes up to a minute or two */
#define CMD_TIMEOUT_MS	60000

struct job {
	const char *kernel, *initrd;
	int index;
	int ok;
};

static void say(const struct job *j, const char *what, int r)
{
	fprintf(stderr, "harness: vm%d: %s (%d)\n", j->index, what, r);
}

static void *drive(void *arg)
{
	struct job *j = arg;
	struct kvmini_config cfg;
	kvmini_config_init(&cfg);
	cfg.kernel_path = j->kernel;
	cfg.initrd_path = j->initrd;
	cfg.mem_bytes = 256ULL << 20;
	cfg.console_out_fd = -1; /* nothing on our stdout: we read the console through the library */
	cfg.no_reboot = true;

	char err[256];
	struct kvmini_vm *vm;
	int r = kvmini_vm_create(&cfg, &vm, err, sizeof(err));
	if (r) {
		fprintf(stderr, "harness: vm%d: %s\n", j->index, err);
		return NULL;
	}
	if ((r = kvmini_vm_start(vm))) {
		say(j, "cannot start", r);
		goto out;
	}
	/* The test initramfs's shell prompt: the shell is reading the console. */
	if ((r = kvmini_console_wait(vm, "kvmini# ", BOOT_TIMEOUT_MS)) < 0) {
		say(j, "no shell", r);
		goto out;
	}
	/* The answer is computed by the guest, so seeing it proves the command ran there. */
	char cmd[64], want[64];
	snprintf(cmd, sizeof(cmd), "echo ANSWER-$((6 * 7 + %d))\n", j->index);
	snprintf(want, sizeof(want), "ANSWER-%d", 42 + j->index);
	if ((r = (int)kvmini_console_write(vm, cmd, strlen(cmd))) < 0 ||
	    (r = kvmini_console_wait(vm, want, CMD_TIMEOUT_MS)) < 0) {
		say(j, "no answer", r);
		goto out;
	}
	const char *off = "poweroff -f\n";
	if ((r = (int)kvmini_console_write(vm, off, strlen(off))) < 0) {
		say(j, "cannot send poweroff", r);
		goto out;
	}
	enum kvmini_exit x = kvmini_vm_wait(vm, CMD_TIMEOUT_MS);
	if (x != KVMINI_EXIT_POWEROFF) {
		say(j, "did not power off", (int)x);
		goto out;
	}
	fprintf(stderr, "harness: vm%d: %s seen, powered off\n", j->index, want);
	j->ok = 1;
out:
	kvmini_vm_destroy(vm);
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc < 3 || argc > 4) {
		fprintf(stderr, "usage: %s KERNEL INITRD [VMS]\n", argv[0]);
		return 2;
	}
	int n = argc == 4 ? atoi(argv[3]) : 1;
	if (n < 1 || n > 8) {
		fprintf(stderr, "harness: VMS must be 1 to 8\n");
		return 2;
	}
	struct job jobs[8];
	pthread_t t[8];
	for (int i = 0; i < n; i++) {
		jobs[i] = (struct job){.kernel = argv[1], .initrd = argv[2], .index = i};
		if (pthread_create(&t[i], NULL, drive, &jobs[i])) {
			fprintf(stderr, "harness: cannot start a thread\n");
			return 1;
		}
	}
	int ok = 0;
	for (int i = 0; i < n; i++) {
		pthread_join(t[i], NULL);
		ok += jobs[i].ok;
	}
	printf("harness: %d of %d VMs passed\n", ok, n);
	return ok == n ? 0 : 1;
}
