/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * Restore planning: from a model and the destination's capabilities to
 * the exact KVM state to write (struct kvm_vcpu_events, edits on the
 * source's kvm_nested_state blob, registers), or a refusal naming the
 * field.  See docs/event-model.rst.
 */

#ifndef TARGET_I386_NESTED_RESTORE_H
#define TARGET_I386_NESTED_RESTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <glib.h>
#include <linux/kvm.h>

#include "nested-events.h"

typedef struct NestedRestoreCaps {
    uint8_t vendor;             /* NestedVendor of the destination */
    bool vcpu_events;           /* KVM_CAP_VCPU_EVENTS */
    bool exception_payload;     /* KVM_CAP_EXCEPTION_PAYLOAD enabled */
    bool nested_state;          /* KVM_CAP_NESTED_STATE */
    bool triple_fault_event;    /* KVM_CAP_X86_TRIPLE_FAULT_EVENT */
    bool smm;                   /* KVM_CAP_X86_SMM */
    bool nrips;                 /* NRIP-save in the guest's CPUID (SVM) */
} NestedRestoreCaps;

/*
 * new = (old & ~mask) | value, on width bytes at offset in the
 * source's kvm_nested_state blob (offsets count from the blob start).
 */
typedef struct NestedStateEdit {
    uint32_t offset;
    uint8_t width;              /* 2, 4 or 8 */
    uint64_t mask;
    uint64_t value;
    const char *field;          /* e.g. "vmcb12.control.event_inj" */
} NestedStateEdit;

typedef enum NestedReg {
    NESTED_REG_RIP,
    NESTED_REG_CS_BASE,
} NestedReg;

typedef struct NestedRegEdit {
    uint8_t reg;                /* NestedReg */
    bool expect_only;           /* must already hold value; not written */
    uint64_t value;
} NestedRegEdit;

#define NESTED_PLAN_MAX_STATE_EDITS 8
#define NESTED_PLAN_MAX_REG_EDITS 4

typedef struct NestedRestorePlan {
    bool set_vcpu_events;
    struct kvm_vcpu_events events;
    uint8_t n_state_edits;
    NestedStateEdit state_edits[NESTED_PLAN_MAX_STATE_EDITS];
    uint8_t n_reg_edits;
    NestedRegEdit reg_edits[NESTED_PLAN_MAX_REG_EDITS];
} NestedRestorePlan;

/*
 * Compute the KVM state that restores st exactly on a destination with
 * caps, or refuse (REFUSED, or INCONSISTENT for an invalid model) with a
 * message naming the field.  Pure: reads only its arguments.
 */
bool nested_event_plan_restore(const NestedEventState *st,
                               const NestedRestoreCaps *caps,
                               NestedRestorePlan *plan, GError **errp);
/*
 * Apply state edits (a plan's state_edits) to a kvm_nested_state blob of
 * len bytes.  Every edit is bounds-checked first, so a plan made for
 * another blob fails instead of writing past this one.
 */
bool nested_state_apply_edits(uint8_t *data, size_t len,
                              const NestedStateEdit *edits, size_t n,
                              GError **errp);

#endif /* TARGET_I386_NESTED_RESTORE_H */
