/*
 * nested-kvm mirror: state shared by the mirror's own files
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef TARGET_I386_NESTED_MIRROR_INT_H
#define TARGET_I386_NESTED_MIRROR_INT_H

#include <linux/kvm.h>
#include "../nested-events.h"
#include "../nested-kernel.h"
#include "../nested-restore.h"
#include "../nested-window.h"
#include "nested-mirror.h"
#include "nested-observer.h"

/*
 * The env fields that kvm_put_vcpu_events() writes from, as the last get
 * left them; compared whole, so fill it with memset first.
 */
typedef struct NestedMirrorEnvEvents {
    uint64_t exception_payload;
    int32_t exception_nr;
    int32_t interrupt_injected;
    uint32_t error_code;
    uint32_t hflags_smm;
    uint32_t hflags2_nmi;
    uint32_t interrupt_request;
    uint32_t sipi_vector;
    uint8_t exception_pending;
    uint8_t exception_injected;
    uint8_t exception_has_payload;
    uint8_t has_error_code;
    uint8_t soft_interrupt;
    uint8_t nmi_injected;
    uint8_t nmi_pending;
    uint8_t triple_fault_pending;
} NestedMirrorEnvEvents;

typedef struct NestedMirror {
    /*
     * What KVM reported at the last get, valid once have_events is set:
     * as it came (kernel_events) and as a kernel without the nested event
     * state would have reported it (events), which is what QEMU reads.
     */
    struct kvm_vcpu_events kernel_events;
    struct kvm_vcpu_events events;
    bool have_events;
    /* The kernel's nested event state at the last get (state-source) */
    NestedKernelSoft kernel_soft;
    NestedKernelSvm kernel_svm;
    /* env's event fields after that get, until the put that follows */
    NestedMirrorEnvEvents synced;
    bool have_synced;
    /* The model built from events, the nested state and the registers */
    NestedEventState model;
    /*
     * Why the last get could not be mirrored (NULL when it could).  A
     * migration refuses to carry a model it could not build.
     */
    char *error;
    /*
     * Set by post_load: model came from a migration stream and plan must
     * be written to KVM at the next full put, instead of what the stock
     * fields alone would restore.
     */
    bool restore_pending;
    NestedRestorePlan plan;
    /*
     * Set by a restoring push for the KVM_SET_VCPU_EVENTS that follows
     * it: plan's shadow has no env field for kvm_put_vcpu_events() to use.
     */
    bool put_shadow;
    /* Set by a restoring push: L1's RIP must be primed (prime_state) */
    bool prime_rip;
    /* The nested state decoded at the last get (has_vmcs: it held one) */
    NestedStateView view;
    /* Armed around a migration or a stop (nested-mirror-migration.c) */
    NestedObserver *observer;
    NestedWindow window;        /* its verdict at the last get */
    /* In guest mode at the stop being prepared: wait for a boundary */
    bool settling;
    bool warned;                /* best-effort warning given, this run */
} NestedMirror;

/* Only a vCPU with SVM or VMX can run an L2. */
static inline NestedVendor nested_mirror_vendor(CPUX86State *env)
{
    if (cpu_has_svm(env)) {
        return NESTED_VENDOR_SVM;
    }
    if (cpu_has_vmx(env)) {
        return NESTED_VENDOR_VMX;
    }
    return NESTED_VENDOR_NONE;
}

/*
 * Within the mirror, calls go one way: vmstate and QMP call into
 * nested-mirror.c, which calls nested-mirror-migration.c.
 */

/* nested-mirror.c */
bool nested_mirror_is_set_up(void);
/* kernel or observer, as nested_mirror_setup() settled it */
NestedKvmStateSource nested_mirror_state_source(void);
void nested_mirror_caps(X86CPU *cpu, NestedRestoreCaps *caps);

/* nested-mirror-migration.c */
void nested_mirror_migration_init(const NestedMirrorConfig *config);
/*
 * Whether saving this vCPU must fail: in guest mode with no observer, so
 * that nothing can tell whether L1's event is in flight, and strict.
 */
bool nested_mirror_unobserved(NestedMirror *m);
/* Why no observer watched the vCPUs that nested_mirror_unobserved() names */
const char *nested_mirror_unobserved_why(void);
/*
 * Fold what the state source says about an event L1 is injecting into
 * L2 into m->model: the kernel's report at every get, or the observer's
 * verdict in guest mode during a migration.  Fails only when that leaves
 * the model unsure and event-migration=strict; best-effort warns once
 * per migration.
 */
bool nested_mirror_judge(X86CPU *cpu, NestedMirror *m, GError **errp);

#endif
