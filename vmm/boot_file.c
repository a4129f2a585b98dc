/* boot_file: read the kernel and initrd when a machine is built, not kept (see boot_file.h). */
#include "vmm/boot_file.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* The file's size when it is one we can load; else an error naming it. */
static int check(const struct boot_file *f, uint64_t *size, struct err *e)
{
	struct stat st;
	if (fstat(f->fd, &st) < 0)
		return err_set(e, -errno, "cannot stat %s '%s': %s", f->what, f->path, strerror(errno));
	if (S_ISDIR(st.st_mode))
		return err_set(e, -EISDIR, "%s '%s' is a directory", f->what, f->path);
	if (!S_ISREG(st.st_mode))
		return err_set(e, -EINVAL, "%s '%s' is not a regular file", f->what, f->path);
	if (st.st_size == 0)
		return err_set(e, -EINVAL, "%s '%s' is empty", f->what, f->path);
	if ((uint64_t)st.st_size > BOOT_FILE_MAX)
		return err_set(e, -EFBIG, "%s '%s' is too large (%lld bytes)", f->what, f->path,
			       (long long)st.st_size);
	*size = (uint64_t)st.st_size;
	return 0;
}

int boot_file_open(struct boot_file *f, const char *what, const char *path, struct err *e)
{
	f->what = what;
	f->path = path;
	f->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (f->fd < 0)
		return err_set(e, -errno, "cannot open %s '%s': %s", what, path, strerror(errno));
	uint64_t size;
	int r = check(f, &size, e);
	if (r)
		boot_file_close(f);
	return r;
}

int boot_file_load(const struct boot_file *f, uint8_t **buf, size_t *len, struct err *e)
{
	uint64_t size;
	int r = check(f, &size, e);
	if (r)
		return r;
	/* Its own mapping, not malloc's: unmapped at once when the build is done. */
	uint8_t *b = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (b == MAP_FAILED)
		return err_set(e, -ENOMEM, "out of memory reading %s '%s'", f->what, f->path);
	size_t got = 0;
	while (got < size) {
		ssize_t n = pread(f->fd, b + got, size - got, (off_t)got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			r = err_set(e, n < 0 ? -errno : -EIO, "cannot read %s '%s': %s", f->what, f->path,
				    n < 0 ? strerror(errno) : "file shrank while reading");
			munmap(b, size);
			return r;
		}
		got += (size_t)n;
	}
	*buf = b;
	*len = got;
	return 0;
}

void boot_file_unload(uint8_t *buf, size_t len)
{
	if (buf)
		munmap(buf, len);
}

void boot_file_close(struct boot_file *f)
{
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
}
