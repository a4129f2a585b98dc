/*
 * boot_file: the kernel and initrd files, opened once when the VM is created and read again
 * each time a machine is built (at start and at every guest reboot), so that their contents
 * are in kvmini's memory only while a machine is being built. Kept for the VM's lifetime they
 * were 10 MiB of its 13.7 MiB resident memory (Debian's kernel and the test initramfs).
 * The fds stay open: a reboot in a jail opens no path. A reboot reads the file as it is then.
 */
#ifndef KVMINI_VMM_BOOT_FILE_H
#define KVMINI_VMM_BOOT_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

struct boot_file {
	int fd;		  /* -1: none */
	const char *what; /* "kernel", "initrd": errors name the file's role */
	const char *path;
};

#define BOOT_FILE_MAX (16ULL << 30)

/* Opens PATH for reading; a directory, a non-regular, empty or huge file is an error. */
int boot_file_open(struct boot_file *f, const char *what, const char *path, struct err *e);
/* Reads the whole file into fresh memory (*buf, *len), freed by boot_file_unload. */
int boot_file_load(const struct boot_file *f, uint8_t **buf, size_t *len, struct err *e);
void boot_file_unload(uint8_t *buf, size_t len);
void boot_file_close(struct boot_file *f);

#endif
