/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * The kernel's own report of an event L1 is injecting into L2: the
 * out-of-tree capability KVM_CAP_X86_NESTED_EVENT_STATE
 * (scripts/kernel/, docs/kvm-uapi.rst).  With it KVM_GET_VCPU_EVENTS
 * reports a soft event KVM has queued for re-injection, with its return
 * address, and KVM_GET_NESTED_STATE reports on SVM whether the NMI KVM
 * re-injects into L2 is L1's.  Those are the two facts the in-flight
 * observer (nested-window.h) otherwise reads from tracepoints.
 *
 * QEMU's linux-headers do not have this uAPI, so its fields are byte
 * offsets here, as the other codecs read the existing blobs.  The same
 * facts feed the same model fields as the observer's verdict; what goes
 * to stock QEMU's own state (env, the cpu/nested_state section) is what
 * a kernel without the capability reports (nested_kernel_*_strip()), so
 * that no new flag or header byte reaches a kernel that would refuse it.
 * Pure C11 + GLib.
 */

#ifndef TARGET_I386_NESTED_KERNEL_H
#define TARGET_I386_NESTED_KERNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <glib.h>
#include <linux/kvm.h>

#include "nested-events.h"

/* include/uapi/linux/kvm.h: a VM capability, a number out of sequence */
#define NESTED_KVM_CAP_X86_NESTED_EVENT_STATE 1000
/* Its bits (KVM_CHECK_EXTENSION's mask, KVM_ENABLE_CAP's args[0]) */
#define NESTED_KERNEL_EVENT_SOFT (1u << 0)  /* KVM_X86_NESTED_EVENT_SOFT */
#define NESTED_KERNEL_EVENT_SVM (1u << 1)   /* KVM_X86_NESTED_EVENT_SVM */
/* Both are needed before the observer can stay unarmed on SVM. */
#define NESTED_KERNEL_EVENT_NEEDED \
    (NESTED_KERNEL_EVENT_SOFT | NESTED_KERNEL_EVENT_SVM)

/* struct kvm_vcpu_events: KVM_VCPUEVENT_VALID_SOFT_EVENT and its bytes */
#define NESTED_VCPUEVENT_VALID_SOFT_EVENT 0x80u
#define NESTED_EV_SOFT_INSN_LEN 29u     /* u8: VMX length, 0 on SVM */
#define NESTED_EV_SOFT_PAD 30u          /* u8[2], must be 0 */
#define NESTED_EV_SOFT_NEXT_RIP 32u     /* u64: SVM NextRIP, 0: unknown */
#define NESTED_EV_RESERVED 40u          /* u8[15] up to byte 54 */
#define NESTED_EV_RESERVED_END 55u

/* struct kvm_nested_state: KVM_STATE_NESTED_SVM_EVENT and its header */
#define NESTED_STATE_SVM_EVENT 0x200u
#define NESTED_KSVM_RESERVED0 16u       /* hdr 8: u64, must be 0 */
#define NESTED_KSVM_EVENT_FLAGS 24u     /* hdr 16: u32 */
#define NESTED_KSVM_RESERVED1 28u       /* hdr 20: u32, must be 0 */
#define NESTED_KSVM_SOFT_OLD_RIP 32u    /* hdr 24: u64 */
#define NESTED_KSVM_SOFT_NEXT_RIP 40u   /* hdr 32: u64 */
#define NESTED_KSVM_SOFT_CSBASE 48u     /* hdr 40: u64 */
#define NESTED_KSVM_END 56u
/* event_flags */
#define NESTED_KSVM_L1_NMI (1u << 0)    /* svm->nmi_l1_to_l2 */
#define NESTED_KSVM_SOFT_INT (1u << 1)  /* svm->soft_int_injected */
#define NESTED_KSVM_FLAGS_ALL (NESTED_KSVM_L1_NMI | NESTED_KSVM_SOFT_INT)

/* What KVM_GET_VCPU_EVENTS adds under KVM_X86_NESTED_EVENT_SOFT */
typedef struct NestedKernelSoft {
    bool reported;              /* KVM_VCPUEVENT_VALID_SOFT_EVENT was set */
    bool queued;                /* a soft event waits for re-injection */
    uint8_t type;               /* NESTED_EVENT_SOFT_INTR / _EXCEPTION */
    uint8_t vector;
    uint8_t insn_len;           /* soft_insn_len */
    uint64_t next_rip;          /* soft_next_rip */
} NestedKernelSoft;

/* What KVM_GET_NESTED_STATE adds under KVM_X86_NESTED_EVENT_SVM */
typedef struct NestedKernelSvm {
    bool reported;              /* KVM_STATE_NESTED_SVM_EVENT was set */
    uint32_t event_flags;
    uint64_t soft_int_old_rip;
    uint64_t soft_int_next_rip;
    uint64_t soft_int_csbase;
} NestedKernelSvm;

/*
 * Read the soft-event part of ev.  Without the flag its bytes must be 0.
 * Refuses, naming the field and value, non-zero padding or reserved
 * bytes, soft_insn_len above 15, two queued soft events, and a length or
 * return address with no soft event queued (KVM_SET_VCPU_EVENTS's rules).
 */
bool nested_kernel_soft_decode(const struct kvm_vcpu_events *ev,
                               NestedKernelSoft *out, GError **errp);
/* ev as a kernel without KVM_X86_NESTED_EVENT_SOFT reports it. */
void nested_kernel_soft_strip(struct kvm_vcpu_events *ev);

/*
 * Read the SVM event header of a kvm_nested_state blob of len bytes.
 * Refuses the flag on a VMX blob or outside guest mode, non-zero
 * reserved0/reserved1 and unknown event_flags bits, naming them.
 */
bool nested_kernel_svm_decode(const uint8_t *blob, size_t len,
                              NestedKernelSvm *out, GError **errp);
/* The blob as a kernel without KVM_X86_NESTED_EVENT_SVM reports it. */
void nested_kernel_svm_strip(uint8_t *blob, size_t len);

/*
 * Fold the kernel's facts into a model built from the stripped events
 * and nested state, as nested_window_apply() folds the observer's
 * verdict.  In guest mode: an NMI KVM re-injects with L1_NMI gets origin
 * L1, exactly.  KVM does not say whose any other event is, and for what
 * stock QEMU cannot restore it need not, because vmcb12 EVENTINJ
 * restores the same delivery whoever raised it: a soft event queued with
 * a known return address becomes L2's injected event of origin L1, and so
 * does a hardware exception with a non-zero error code (stock does not
 * migrate error_code).  A soft event whose return address KVM would
 * decode from RIP is left out, as without the capability, and runs
 * again.  rip and cs_base are L2's, which KVM rewound to the event's old
 * RIP.  In guest mode on SVM both reports must be there; facts that
 * contradict the model are refused naming the field.
 */
bool nested_kernel_apply(NestedEventState *st, const NestedKernelSoft *soft,
                         const NestedKernelSvm *svm, uint64_t rip,
                         uint64_t cs_base, GError **errp);

#endif /* TARGET_I386_NESTED_KERNEL_H */
