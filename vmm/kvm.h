/* SPDX-License-Identifier: MIT */
/* Thin wrappers around the KVM ioctls: each returns >= 0 or a negative errno. */
#ifndef KVMINI_VMM_KVM_H
#define KVMINI_VMM_KVM_H

#include <linux/kvm.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

/* Opens the KVM device and checks the API version and the capabilities kvmini needs (arch_kvm_check too). */
int kvm_open(const char *path, struct err *e);
int kvm_ioctl(int fd, unsigned long req, void *arg);
int kvm_check_extension(int fd, long cap);

/* A capability kvmini needs, with its name for the error; KVM_CAP_NEED(KVM_CAP_X) makes one. */
struct kvm_cap_need {
	long cap;
	const char *name;
};
#define KVM_CAP_NEED(c)                                                                                      \
	{                                                                                                    \
		c, #c                                                                                        \
	}
/* 0 when fd has every capability in need[0..n), else -ENOTSUP naming the first one missing. */
int kvm_require_caps(int fd, const struct kvm_cap_need *need, size_t n, struct err *e);

#endif
