/* SPDX-License-Identifier: MIT */
/* Set-up thread only. */
#include "kvm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

int kvm_ioctl(int fd, unsigned long req, void *arg)
{
	int r;
	do
		r = ioctl(fd, req, arg);
	while (r < 0 && errno == EINTR);
	return r < 0 ? -errno : r;
}

int kvm_check_extension(int fd, long cap)
{
	int r = ioctl(fd, KVM_CHECK_EXTENSION, cap);
	return r < 0 ? 0 : r;
}

int kvm_open(const char *path, struct err *e)
{
	int fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		int er = errno;
		if (er == ENOENT)
			return err_set(
			    e, -er,
			    "%s does not exist: KVM is not available (load kvm-intel or kvm-amd, and "
			    "enable virtualization in the firmware or the host VM)",
			    path);
		if (er == EACCES || er == EPERM)
			return err_set(e, -er,
				       "permission denied opening %s: add your user to the 'kvm' group "
				       "(sudo usermod -aG kvm $USER) or run as root",
				       path);
		return err_set(e, -er, "cannot open %s: %s", path, strerror(er));
	}
	int v = ioctl(fd, KVM_GET_API_VERSION, 0);
	if (v < 0) {
		int er = errno;
		close(fd);
		return err_set(e, -ENODEV, "%s is not a KVM device (KVM_GET_API_VERSION failed: %s)", path,
			       strerror(er));
	}
	if (v != KVM_API_VERSION) {
		close(fd);
		return err_set(e, -ENOTSUP, "%s speaks KVM API version %d, kvmini needs %d", path, v,
			       KVM_API_VERSION);
	}
	static const struct {
		long cap;
		const char *name;
	} need[] = {
	    {KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP"},
	    {KVM_CAP_PIT2, "KVM_CAP_PIT2"},
	    {KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY"},
	    {KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID"},
	    {KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT"},
	};
	for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++) {
		if (!kvm_check_extension(fd, need[i].cap)) {
			close(fd);
			return err_set(e, -ENOTSUP, "the host's KVM lacks %s, which kvmini needs",
				       need[i].name);
		}
	}
	return fd;
}

int kvm_get_supported_cpuid(int kvm_fd, struct kvm_cpuid2 **out, struct err *e)
{
	for (unsigned n = 64; n <= 4096; n *= 2) {
		struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + n * sizeof(c->entries[0]));
		if (!c)
			return err_set(e, -ENOMEM, "out of memory");
		c->nent = n;
		int r = kvm_ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, c);
		if (r == 0) {
			*out = c;
			return 0;
		}
		free(c);
		if (r != -E2BIG)
			return err_set(e, r, "KVM_GET_SUPPORTED_CPUID: %s", strerror(-r));
	}
	return err_set(e, -E2BIG, "KVM_GET_SUPPORTED_CPUID: too many entries");
}
