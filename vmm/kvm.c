/* SPDX-License-Identifier: MIT */
/* Set-up thread only. */
#include "kvm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "vmm/arch/arch.h"

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

int kvm_require_caps(int fd, const struct kvm_cap_need *need, size_t n, struct err *e)
{
	for (size_t i = 0; i < n; i++)
		if (!kvm_check_extension(fd, need[i].cap))
			return err_set(e, -ENOTSUP, "the host's KVM lacks %s, which kvmini needs",
				       need[i].name);
	return 0;
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
	static const struct kvm_cap_need need[] = {
	    KVM_CAP_NEED(KVM_CAP_IRQCHIP),
	    KVM_CAP_NEED(KVM_CAP_USER_MEMORY),
	    KVM_CAP_NEED(KVM_CAP_IMMEDIATE_EXIT),
	};
	int r = kvm_require_caps(fd, need, sizeof(need) / sizeof(need[0]), e);
	if (!r)
		r = arch_kvm_check(fd, e);
	if (r) {
		close(fd);
		return r;
	}
	return fd;
}
