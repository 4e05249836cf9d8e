/*
 * nested-kvm mirror: state shared by the mirror, VMState and QMP code
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef TARGET_I386_NESTED_KVM_MIRROR_INT_H
#define TARGET_I386_NESTED_KVM_MIRROR_INT_H

#include <linux/kvm.h>
#include "../nested-events.h"
#include "../nested-window.h"

/*
 * The env fields that kvm_put_vcpu_events() writes from, as the last get
 * left them; compared whole, so fill it with memset first.
 */
typedef struct NestedKVMEnvEvents {
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
} NestedKVMEnvEvents;

typedef struct NestedKVMMirror {
    /* What KVM reported at the last get; valid once have_events is set */
    struct kvm_vcpu_events events;
    bool have_events;
    /* env's event fields after that get, until the put that follows */
    NestedKVMEnvEvents synced;
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
    /* vmcb12.control.next_rip at the last get (SVM guest mode) */
    uint64_t svm_next_rip;
    /* The in-flight observer, armed while a migration runs */
    bool observing;
    int observe_fd[NESTED_TRACE__MAX];
    void *observe_ring;
    size_t observe_ring_len;
    NestedWindow window;        /* its verdict at the last get */
} NestedKVMMirror;

NestedKVMMirror *nested_kvm_mirror_get(X86CPU *cpu);
void nested_kvm_mirror_caps(X86CPU *cpu, NestedRestoreCaps *caps);
void nested_kvm_observe_release(NestedKVMMirror *m);
bool nested_kvm_observe_apply(X86CPU *cpu, NestedKVMMirror *m,
                              GError **errp);

#endif
