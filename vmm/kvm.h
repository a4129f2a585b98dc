/* SPDX-License-Identifier: MIT */
/* Thin wrappers around the KVM ioctls: each returns >= 0 or a negative errno. */
#ifndef KVMINI_VMM_KVM_H
#define KVMINI_VMM_KVM_H

#include <linux/kvm.h>
#include <stdint.h>

#include "common/err.h"

/* Opens the KVM device and checks the API version and the capabilities kvmini needs (arch_kvm_check too). */
int kvm_open(const char *path, struct err *e);
int kvm_ioctl(int fd, unsigned long req, void *arg);
int kvm_check_extension(int fd, long cap);

#endif
