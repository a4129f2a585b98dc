/* SPDX-License-Identifier: MIT */
/* Set-up or migration thread, with the VM's vCPUs parked. */
#include "kvm_state.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/kvm.h"

uint32_t kvm_state_xsave_size(int kvm_fd)
{
	int n = kvm_check_extension(kvm_fd, KVM_CAP_XSAVE2);
	return n > (int)sizeof(struct kvm_xsave) ? (uint32_t)n : (uint32_t)sizeof(struct kvm_xsave);
}

void vcpu_state_free(struct vcpu_state *s)
{
	free(s->cpuid);
	free(s->msrs);
	free(s->xsave);
	memset(s, 0, sizeof(*s));
}

/* ---- Reading from KVM ---- */

/* A vCPU's CPUID table as set with KVM_SET_CPUID2 (E2BIG: a bigger buffer). */
int vcpu_cpuid_get(int vcpu_fd, struct kvm_cpuid2 **out, struct err *e)
{
	for (unsigned n = 64; n <= KVM_STATE_MAX_CPUID; n *= 2) {
		struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + n * sizeof(c->entries[0]));
		if (!c)
			return err_set(e, -ENOMEM, "out of memory");
		c->nent = n;
		int r = kvm_ioctl(vcpu_fd, KVM_GET_CPUID2, c);
		if (r == 0) {
			*out = c;
			return 0;
		}
		free(c);
		if (r != -E2BIG)
			return err_set(e, r, "KVM_GET_CPUID2: %s", strerror(-r));
	}
	return err_set(e, -E2BIG, "KVM_GET_CPUID2: more than %d entries", KVM_STATE_MAX_CPUID);
}

/*
 * Every MSR that KVM lists (KVM_GET_MSR_INDEX_LIST: the architectural ones it
 * saves, the TSC, kvmclock, async PF, PV EOI, steal time...) and that reads
 * back on this vCPU. KVM_GET_MSRS stops at the first one it refuses and
 * returns how many it read: drop that one and go on after it.
 */
static int get_msrs(int kvm_fd, int vcpu_fd, struct vcpu_state *s, struct err *e)
{
	struct kvm_msr_list probe = {.nmsrs = 0};
	int r = kvm_ioctl(kvm_fd, KVM_GET_MSR_INDEX_LIST, &probe);
	if (r && r != -E2BIG)
		return err_set(e, r, "KVM_GET_MSR_INDEX_LIST: %s", strerror(-r));
	uint32_t n = probe.nmsrs;
	struct kvm_msr_list *list = calloc(1, sizeof(*list) + n * sizeof(list->indices[0]));
	struct kvm_msrs *m = calloc(1, sizeof(*m) + n * sizeof(m->entries[0]));
	if (!list || !m) {
		r = err_set(e, -ENOMEM, "out of memory");
		goto out;
	}
	list->nmsrs = n;
	if ((r = kvm_ioctl(kvm_fd, KVM_GET_MSR_INDEX_LIST, list))) {
		r = err_set(e, r, "KVM_GET_MSR_INDEX_LIST: %s", strerror(-r));
		goto out;
	}
	n = list->nmsrs;
	struct kvm_msrs *try = calloc(1, sizeof(*try) + n * sizeof(try->entries[0]));
	if (!try) {
		r = err_set(e, -ENOMEM, "out of memory");
		goto out;
	}
	uint32_t kept = 0;
	for (uint32_t pos = 0; pos < n;) {
		try->nmsrs = n - pos;
		for (uint32_t i = pos; i < n; i++)
			try->entries[i - pos] = (struct kvm_msr_entry){.index = list->indices[i]};
		r = kvm_ioctl(vcpu_fd, KVM_GET_MSRS, try);
		if (r < 0) {
			free(try);
			r = err_set(e, r, "KVM_GET_MSRS: %s", strerror(-r));
			goto out;
		}
		memcpy(&m->entries[kept], try->entries, (size_t)r * sizeof(m->entries[0]));
		kept += (uint32_t)r;
		pos += (uint32_t)r + 1; /* skip the one it refused, if any */
	}
	free(try);
	if (kept > KVM_STATE_MAX_MSRS) {
		r = err_set(e, -E2BIG, "this vCPU has %u MSRs to save, more than %d", kept,
			    KVM_STATE_MAX_MSRS);
		goto out;
	}
	m->nmsrs = kept;
	s->msrs = m;
	m = NULL;
	r = 0;
out:
	free(list);
	free(m);
	return r;
}

/* XSAVE2 (KVM_CAP_XSAVE2) covers features past the legacy 4 KiB, such as AMX tiles. */
static int get_xsave(int kvm_fd, int vcpu_fd, struct vcpu_state *s, struct err *e)
{
	bool v2 = kvm_check_extension(kvm_fd, KVM_CAP_XSAVE2) > 0;
	s->xsave_size = kvm_state_xsave_size(kvm_fd);
	s->xsave = calloc(1, s->xsave_size);
	if (!s->xsave)
		return err_set(e, -ENOMEM, "out of memory");
	int r = kvm_ioctl(vcpu_fd, v2 ? KVM_GET_XSAVE2 : KVM_GET_XSAVE, s->xsave);
	if (r)
		return err_set(e, r, "%s: %s", v2 ? "KVM_GET_XSAVE2" : "KVM_GET_XSAVE", strerror(-r));
	return 0;
}

#define IOCTL(fd, req, arg)                                                                                  \
	do {                                                                                                 \
		int r_ = kvm_ioctl(fd, req, arg);                                                            \
		if (r_ < 0)                                                                                  \
			return err_set(e, r_, #req ": %s", strerror(-r_));                                   \
	} while (0)

static int vcpu_state_get_(int kvm_fd, int vcpu_fd, struct vcpu_state *s, struct err *e)
{
	int r;
	if ((r = vcpu_cpuid_get(vcpu_fd, &s->cpuid, e)) || (r = get_msrs(kvm_fd, vcpu_fd, s, e)) ||
	    (r = get_xsave(kvm_fd, vcpu_fd, s, e)))
		return r;
	IOCTL(vcpu_fd, KVM_GET_SREGS, &s->sregs);
	IOCTL(vcpu_fd, KVM_GET_REGS, &s->regs);
	IOCTL(vcpu_fd, KVM_GET_XCRS, &s->xcrs);
	IOCTL(vcpu_fd, KVM_GET_DEBUGREGS, &s->debugregs);
	IOCTL(vcpu_fd, KVM_GET_LAPIC, &s->lapic);
	IOCTL(vcpu_fd, KVM_GET_VCPU_EVENTS, &s->events);
	IOCTL(vcpu_fd, KVM_GET_MP_STATE, &s->mp_state);
	return 0;
}

int vcpu_state_get(int kvm_fd, int vcpu_fd, struct vcpu_state *s, struct err *e)
{
	memset(s, 0, sizeof(*s));
	int r = vcpu_state_get_(kvm_fd, vcpu_fd, s, e);
	if (r)
		vcpu_state_free(s);
	return r;
}

/* ---- Encoding ---- */

/* A fixed-size KVM struct: its length, then its bytes. */
static void put_blob(struct sbuf *b, const void *p, uint32_t n)
{
	sbuf_u32(b, n);
	sbuf_put(b, p, n);
}

void vcpu_state_write(const struct vcpu_state *s, struct sbuf *out)
{
	sbuf_u32(out, KVM_STATE_VERSION);
	sbuf_u32(out, s->cpuid->nent);
	sbuf_put(out, s->cpuid->entries, s->cpuid->nent * sizeof(s->cpuid->entries[0]));
	sbuf_u32(out, s->msrs->nmsrs);
	for (uint32_t i = 0; i < s->msrs->nmsrs; i++) {
		sbuf_u32(out, s->msrs->entries[i].index);
		sbuf_u64(out, s->msrs->entries[i].data);
	}
	put_blob(out, &s->sregs, sizeof(s->sregs));
	put_blob(out, &s->regs, sizeof(s->regs));
	put_blob(out, s->xsave, s->xsave_size);
	put_blob(out, &s->xcrs, sizeof(s->xcrs));
	put_blob(out, &s->debugregs, sizeof(s->debugregs));
	put_blob(out, &s->lapic, sizeof(s->lapic));
	put_blob(out, &s->events, sizeof(s->events));
	put_blob(out, &s->mp_state, sizeof(s->mp_state));
}

/* The input ended early: the one message for every truncation. */
static int truncated(struct err *e, const char *what)
{
	return err_set(e, -EINVAL, "the saved %s state is truncated", what);
}

/* Reads a blob written by put_blob into p, which is n bytes here. */
static int get_blob(struct sreader *in, void *p, uint32_t n, const char *what, struct err *e)
{
	uint32_t len = sreader_u32(in);
	if (in->bad)
		return truncated(e, "vCPU");
	if (!sreader_check(in, len == n))
		return err_set(e, -EINVAL, "the saved %s is %u bytes, this host's is %u", what, len, n);
	sreader_get(in, p, n);
	return in->bad ? truncated(e, "vCPU") : 0;
}

static int vcpu_state_parse_(struct sreader *in, uint32_t host_xsave_size, struct vcpu_state *s,
			     struct err *e)
{
	uint32_t v = sreader_u32(in);
	if (in->bad)
		return truncated(e, "vCPU");
	if (!sreader_check(in, v == KVM_STATE_VERSION))
		return err_set(e, -EINVAL, "the saved vCPU state has version %u, this kvmini reads %d", v,
			       KVM_STATE_VERSION);

	uint32_t nent = sreader_u32(in);
	if (!sreader_check(in, nent <= KVM_STATE_MAX_CPUID))
		return err_set(e, -EINVAL, "the saved CPUID table has %u entries, at most %d are allowed",
			       nent, KVM_STATE_MAX_CPUID);
	s->cpuid = calloc(1, sizeof(*s->cpuid) + nent * sizeof(s->cpuid->entries[0]));
	if (!s->cpuid)
		return err_set(e, -ENOMEM, "out of memory");
	s->cpuid->nent = nent;
	sreader_get(in, s->cpuid->entries, nent * sizeof(s->cpuid->entries[0]));

	uint32_t nmsrs = sreader_u32(in);
	if (in->bad)
		return truncated(e, "vCPU");
	if (!sreader_check(in, nmsrs <= KVM_STATE_MAX_MSRS))
		return err_set(e, -EINVAL, "the saved state has %u MSRs, at most %d are allowed", nmsrs,
			       KVM_STATE_MAX_MSRS);
	s->msrs = calloc(1, sizeof(*s->msrs) + nmsrs * sizeof(s->msrs->entries[0]));
	if (!s->msrs)
		return err_set(e, -ENOMEM, "out of memory");
	s->msrs->nmsrs = nmsrs;
	for (uint32_t i = 0; i < nmsrs; i++) {
		s->msrs->entries[i].index = sreader_u32(in);
		s->msrs->entries[i].data = sreader_u64(in);
	}
	if (in->bad)
		return truncated(e, "vCPU");

	int r;
	if ((r = get_blob(in, &s->sregs, sizeof(s->sregs), "sregs", e)) ||
	    (r = get_blob(in, &s->regs, sizeof(s->regs), "regs", e)))
		return r;
	/* The XSAVE layout depends on the CPU's features: only the same size can be loaded. */
	s->xsave_size = host_xsave_size;
	s->xsave = calloc(1, host_xsave_size);
	if (!s->xsave)
		return err_set(e, -ENOMEM, "out of memory");
	if ((r = get_blob(in, s->xsave, host_xsave_size, "XSAVE area", e)) ||
	    (r = get_blob(in, &s->xcrs, sizeof(s->xcrs), "XCRs", e)) ||
	    (r = get_blob(in, &s->debugregs, sizeof(s->debugregs), "debug registers", e)) ||
	    (r = get_blob(in, &s->lapic, sizeof(s->lapic), "LAPIC", e)) ||
	    (r = get_blob(in, &s->events, sizeof(s->events), "vCPU events", e)) ||
	    (r = get_blob(in, &s->mp_state, sizeof(s->mp_state), "MP state", e)))
		return r;
	if (!sreader_check(in, s->xcrs.nr_xcrs <= KVM_MAX_XCRS))
		return err_set(e, -EINVAL, "the saved state has %u XCRs, at most %d are allowed",
			       s->xcrs.nr_xcrs, KVM_MAX_XCRS);
	return 0;
}

int vcpu_state_parse(struct sreader *in, uint32_t host_xsave_size, struct vcpu_state *s, struct err *e)
{
	memset(s, 0, sizeof(*s));
	int r = vcpu_state_parse_(in, host_xsave_size, s, e);
	if (r) {
		sreader_check(in, false);
		vcpu_state_free(s);
	}
	return r;
}

/* ---- Writing to KVM ---- */

/*
 * The order matters (QEMU's kvm_arch_put_registers keeps the same):
 * - CPUID first: KVM checks XSAVE features, XCR0 and MSR values against it,
 *   and refuses to change it once the vCPU ran.
 * - sregs (EFER, APIC base) and the LAPIC before the MSRs: TSC_DEADLINE only
 *   takes in an enabled LAPIC whose timer is in TSC-deadline mode.
 * - LAPIC before the events, which put a latched INIT into it.
 * - MP state last: KVM checks it against the SMM and latched-INIT state that
 *   the events set (no INIT_RECEIVED or SIPI_RECEIVED while INIT is latched).
 */
int vcpu_state_put(int vcpu_fd, const struct vcpu_state *s, struct err *e)
{
	IOCTL(vcpu_fd, KVM_SET_CPUID2, s->cpuid);
	IOCTL(vcpu_fd, KVM_SET_SREGS, (void *)&s->sregs);
	IOCTL(vcpu_fd, KVM_SET_REGS, (void *)&s->regs);
	IOCTL(vcpu_fd, KVM_SET_XSAVE, s->xsave);
	/* A host without XSAVE reports no XCRs and refuses KVM_SET_XCRS. */
	if (s->xcrs.nr_xcrs)
		IOCTL(vcpu_fd, KVM_SET_XCRS, (void *)&s->xcrs);
	IOCTL(vcpu_fd, KVM_SET_LAPIC, (void *)&s->lapic);
	int r = kvm_ioctl(vcpu_fd, KVM_SET_MSRS, s->msrs);
	if (r < 0)
		return err_set(e, r, "KVM_SET_MSRS: %s", strerror(-r));
	if ((uint32_t)r != s->msrs->nmsrs)
		return err_set(e, -EINVAL, "KVM refused the saved value 0x%llx of MSR 0x%x",
			       (unsigned long long)s->msrs->entries[r].data, s->msrs->entries[r].index);
	IOCTL(vcpu_fd, KVM_SET_DEBUGREGS, (void *)&s->debugregs);
	/* NMI and SIPI state are only taken when flagged (KVM_GET_VCPU_EVENTS does not flag them). */
	struct kvm_vcpu_events ev = s->events;
	ev.flags |= KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SIPI_VECTOR;
	IOCTL(vcpu_fd, KVM_SET_VCPU_EVENTS, &ev);
	IOCTL(vcpu_fd, KVM_SET_MP_STATE, (void *)&s->mp_state);
	return 0;
}

int vcpu_state_save(int kvm_fd, int vcpu_fd, struct sbuf *out, struct err *e)
{
	struct vcpu_state s;
	int r = vcpu_state_get(kvm_fd, vcpu_fd, &s, e);
	if (r)
		return r;
	vcpu_state_write(&s, out);
	vcpu_state_free(&s);
	return out->oom ? err_set(e, -ENOMEM, "out of memory saving the vCPU state") : 0;
}

int vcpu_state_load(int kvm_fd, int vcpu_fd, struct sreader *in, struct err *e)
{
	struct vcpu_state s;
	int r = vcpu_state_parse(in, kvm_state_xsave_size(kvm_fd), &s, e);
	if (r)
		return r;
	r = vcpu_state_put(vcpu_fd, &s, e);
	vcpu_state_free(&s);
	return r;
}

/* ---- VM-wide: PICs, IOAPIC, PIT, kvmclock ---- */

int vm_kvm_state_get(int vm_fd, struct vm_kvm_state *s, struct err *e)
{
	memset(s, 0, sizeof(*s));
	for (uint32_t i = 0; i < 3; i++) {
		s->chip[i].chip_id = i;
		IOCTL(vm_fd, KVM_GET_IRQCHIP, &s->chip[i]);
	}
	IOCTL(vm_fd, KVM_GET_PIT2, &s->pit);
	struct kvm_clock_data clock = {0};
	IOCTL(vm_fd, KVM_GET_CLOCK, &clock);
	s->clock = clock.clock;
	return 0;
}

void vm_kvm_state_write(const struct vm_kvm_state *s, struct sbuf *out)
{
	sbuf_u32(out, KVM_STATE_VERSION);
	for (int i = 0; i < 3; i++)
		put_blob(out, &s->chip[i], sizeof(s->chip[i]));
	put_blob(out, &s->pit, sizeof(s->pit));
	sbuf_u64(out, s->clock);
}

int vm_kvm_state_parse(struct sreader *in, struct vm_kvm_state *s, struct err *e)
{
	static const char *const chip_names[] = {"PIC master", "PIC slave", "IOAPIC"};
	memset(s, 0, sizeof(*s));
	uint32_t v = sreader_u32(in);
	if (in->bad)
		return truncated(e, "VM");
	if (!sreader_check(in, v == KVM_STATE_VERSION))
		return err_set(e, -EINVAL, "the saved VM state has version %u, this kvmini reads %d", v,
			       KVM_STATE_VERSION);
	int r;
	for (uint32_t i = 0; i < 3; i++) {
		if ((r = get_blob(in, &s->chip[i], sizeof(s->chip[i]), chip_names[i], e)))
			return r;
		if (!sreader_check(in, s->chip[i].chip_id == i))
			return err_set(e, -EINVAL, "the saved %s state names chip %u", chip_names[i],
				       s->chip[i].chip_id);
	}
	if ((r = get_blob(in, &s->pit, sizeof(s->pit), "PIT", e)))
		return r;
	s->clock = sreader_u64(in);
	return in->bad ? truncated(e, "VM") : 0;
}

/* Also sets kvmclock to the saved value, so that guest time goes on from where it stopped. */
int vm_kvm_state_put(int vm_fd, const struct vm_kvm_state *s, struct err *e)
{
	for (int i = 0; i < 3; i++)
		IOCTL(vm_fd, KVM_SET_IRQCHIP, (void *)&s->chip[i]);
	IOCTL(vm_fd, KVM_SET_PIT2, (void *)&s->pit);
	struct kvm_clock_data clock = {.clock = s->clock};
	IOCTL(vm_fd, KVM_SET_CLOCK, &clock);
	return 0;
}

int vm_kvm_state_save(int vm_fd, struct sbuf *out, struct err *e)
{
	struct vm_kvm_state s;
	int r = vm_kvm_state_get(vm_fd, &s, e);
	if (r)
		return r;
	vm_kvm_state_write(&s, out);
	return out->oom ? err_set(e, -ENOMEM, "out of memory saving the VM state") : 0;
}

int vm_kvm_state_load(int vm_fd, struct sreader *in, struct err *e)
{
	struct vm_kvm_state s;
	int r = vm_kvm_state_parse(in, &s, e);
	return r ? r : vm_kvm_state_put(vm_fd, &s, e);
}
