/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * Nested-virtualization event model: the injected-event state of L1 and
 * L2 as the fork mirrors it, codecs for the SVM/VMX/KVM encodings of
 * that state, validation, and restore planning.
 *
 * Pure C11 + GLib; no QEMU include, so that it can be unit-tested and
 * fuzzed on its own.  See docs/event-model.rst for the design.
 */

#ifndef TARGET_I386_NESTED_EVENTS_H
#define TARGET_I386_NESTED_EVENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <glib.h>
#include <linux/kvm.h>

/* ------------------------------------------------------------------ */
/* Errors                                                             */
/* ------------------------------------------------------------------ */

#define NESTED_EVENT_ERROR nested_event_error_quark()
GQuark nested_event_error_quark(void);

typedef enum NestedEventErrorCode {
    NESTED_EVENT_ERROR_TRUNCATED,       /* blob shorter than it claims */
    NESTED_EVENT_ERROR_OVERSIZED,       /* blob longer than any valid one */
    NESTED_EVENT_ERROR_RESERVED,        /* reserved bits or bytes set */
    NESTED_EVENT_ERROR_INVALID,         /* field value not allowed */
    NESTED_EVENT_ERROR_UNREPRESENTABLE, /* encoding cannot express it */
    NESTED_EVENT_ERROR_INCONSISTENT,    /* validation failed */
    NESTED_EVENT_ERROR_REFUSED,         /* destination cannot restore it */
} NestedEventErrorCode;

/* ------------------------------------------------------------------ */
/* The model                                                          */
/* ------------------------------------------------------------------ */

/*
 * Event types.  The numbers are those of the VMX interruption-type
 * field (SDM vol. 3C 24.8.3); SVM's EVENTINJ uses 0, 2, 3 and 4 with the
 * same meaning and has no 5, 6 or 7 (INT3/INTO go in as type 3).
 */
typedef enum NestedEventType {
    NESTED_EVENT_EXT_INTR = 0,
    NESTED_EVENT_NMI = 2,
    NESTED_EVENT_HW_EXCEPTION = 3,
    NESTED_EVENT_SOFT_INTR = 4,          /* INT n */
    NESTED_EVENT_PRIV_SOFT_EXCEPTION = 5, /* INT1 / ICEBP */
    NESTED_EVENT_SOFT_EXCEPTION = 6,     /* INT3, INTO */
    NESTED_EVENT_OTHER = 7,              /* VMX only: pending MTF exit */
} NestedEventType;

typedef enum NestedEventOrigin {
    NESTED_ORIGIN_L0 = 0,   /* KVM or QEMU injected it */
    NESTED_ORIGIN_L1 = 1,   /* L1 asked for it: EVENTINJ / VM-entry info */
} NestedEventOrigin;

typedef enum NestedVendor {
    NESTED_VENDOR_NONE = 0,
    NESTED_VENDOR_SVM = 1,
    NESTED_VENDOR_VMX = 2,
} NestedVendor;

/* Vectors with a fixed meaning for the rules below. */
#define NESTED_VECTOR_DB 1
#define NESTED_VECTOR_NMI 2
#define NESTED_VECTOR_BP 3
#define NESTED_VECTOR_OF 4
#define NESTED_VECTOR_PF 14
#define NESTED_MAX_INSN_LEN 15
/* process_nmi() in KVM's x86.c: one NMI running plus one pending. */
#define NESTED_MAX_PENDING_NMI 2

/* The one event whose delivery is under way at a level. */
typedef struct NestedEvent {
    bool valid;
    uint8_t type;           /* NestedEventType */
    uint8_t vector;
    uint8_t origin;         /* NestedEventOrigin */
    bool has_error_code;
    uint32_t error_code;
    /* Soft events only (types 4, 5, 6); zero otherwise. */
    uint8_t insn_len;
    uint64_t old_rip;       /* RIP of the INT/INT3/INTO/ICEBP */
    uint64_t next_rip;      /* return address pushed by delivery */
    uint64_t cs_base;
} NestedEvent;

/* An exception raised but not yet injected (KVM's "pending"). */
typedef struct NestedPendingException {
    bool pending;
    uint8_t vector;
    bool has_error_code;
    uint32_t error_code;
    bool has_payload;       /* KVM_CAP_EXCEPTION_PAYLOAD semantics */
    uint64_t payload;       /* CR2 for #PF, DR6 bits for #DB */
} NestedPendingException;

typedef struct NestedEventLevel {
    NestedEvent injected;
    NestedPendingException exception;
    uint8_t nmi_pending;    /* count, at most NESTED_MAX_PENDING_NMI */
    bool nmi_masked;
    uint8_t interrupt_shadow; /* KVM_X86_SHADOW_INT_MOV_SS | _STI */
} NestedEventLevel;

typedef struct NestedSmiState {
    bool smm;
    bool pending;
    bool smm_inside_nmi;
    bool latched_init;
} NestedSmiState;

/*
 * The whole vCPU.  KVM keeps one event queue per vCPU, for whichever
 * level runs: l1 is that queue outside guest mode, l2 inside it.  While
 * in guest mode l1 must be idle (validation enforces it).
 */
typedef struct NestedEventState {
    uint8_t vendor;         /* NestedVendor */
    bool guest_mode;
    bool nested_run_pending;
    bool gif;
    bool triple_fault_pending;
    bool sipi_vector_valid;
    uint32_t sipi_vector;
    NestedSmiState smi;
    NestedEventLevel l1;
    NestedEventLevel l2;
} NestedEventState;

void nested_event_state_init(NestedEventState *st, NestedVendor vendor);
const char *nested_event_type_name(uint8_t type);
bool nested_event_type_is_soft(uint8_t type);
/* Architectural: only these vectors push an error code (hw exceptions). */
bool nested_vector_has_error_code(uint8_t vector);
/* The level KVM's vCPU-wide queue currently belongs to. */
const NestedEventLevel *nested_event_current_level(const NestedEventState *st);
/* True when stock QEMU 10.0.13's own fields would lose part of @st. */
bool nested_event_beyond_stock(const NestedEventState *st);

/* ------------------------------------------------------------------ */
/* Interruption-information words (SVM and VMX)                       */
/* ------------------------------------------------------------------ */

typedef enum NestedIntInfoKind {
    NESTED_INTINFO_SVM_EVENTINJ,        /* VMCB EVENTINJ, APM 15.20 */
    NESTED_INTINFO_SVM_EXITINTINFO,     /* VMCB EXITINTINFO, APM 15.7.2 */
    NESTED_INTINFO_VMX_ENTRY,           /* SDM 24.8.3 */
    NESTED_INTINFO_VMX_IDT_VECTORING,   /* SDM 24.9.3 */
    NESTED_INTINFO_VMX_EXIT,            /* SDM 24.9.2 */
} NestedIntInfoKind;

#define NESTED_INTINFO_VECTOR_MASK 0xffu
#define NESTED_INTINFO_TYPE_SHIFT 8
#define NESTED_INTINFO_TYPE_MASK 0x700u
#define NESTED_INTINFO_ERROR_CODE (1u << 11) /* SVM EV, VMX deliver-EC */
#define NESTED_INTINFO_NMI_UNBLOCKED (1u << 12) /* VMX exit/IDT only */
#define NESTED_INTINFO_VALID (1u << 31)

/*
 * One decoded word.  type is the raw 3-bit type of that encoding (no
 * cross-vendor mapping here, so round trips are exact).  A word whose
 * valid bit is clear is ignored by hardware but may hold stale bits
 * (SVM clears only EVENTINJ.V when it takes the event); they are kept
 * verbatim in inactive so that re-encoding reproduces them.
 */
typedef struct NestedIntInfo {
    bool valid;
    uint8_t type;
    uint8_t vector;
    bool error_code_valid;
    bool nmi_unblocked;     /* VMX bit 12; exit info and IDT-vectoring */
    uint32_t inactive;      /* whole word when !valid, else 0 */
} NestedIntInfo;

const char *nested_intinfo_kind_name(NestedIntInfoKind kind);
bool nested_intinfo_type_allowed(NestedIntInfoKind kind, uint8_t type);
uint32_t nested_intinfo_reserved_mask(NestedIntInfoKind kind);
bool nested_intinfo_decode(NestedIntInfoKind kind, uint32_t raw,
                           NestedIntInfo *out, GError **errp);
bool nested_intinfo_encode(NestedIntInfoKind kind, const NestedIntInfo *in,
                           uint32_t *raw, GError **errp);

/*
 * Model event <-> SVM EVENTINJ/EXITINTINFO (+ error-code word).
 * SVM has no separate soft-exception type: type 3 with vector 3 or 4 is
 * INT3/INTO (as KVM's is_evtinj_soft() reads it), so a hardware
 * exception with those vectors, ICEBP and type 7 are unrepresentable.
 * An NMI's vector is ignored by SVM (KVM writes 0); the model always
 * says 2 and the encoder writes 2.
 */
bool nested_event_from_svm(NestedIntInfoKind kind, uint32_t raw,
                           uint32_t err, NestedEvent *ev, GError **errp);
bool nested_event_to_svm(const NestedEvent *ev, uint32_t *raw,
                         uint32_t *err, GError **errp);
/* Model event <-> VMX interruption info + error code + insn length. */
bool nested_event_from_vmx(NestedIntInfoKind kind, uint32_t raw,
                           uint32_t err, uint32_t insn_len,
                           NestedEvent *ev, GError **errp);
bool nested_event_to_vmx(const NestedEvent *ev, uint32_t *raw,
                         uint32_t *err, uint32_t *insn_len, GError **errp);

/* ------------------------------------------------------------------ */
/* struct kvm_vcpu_events                                             */
/* ------------------------------------------------------------------ */

#define NESTED_VCPUEVENT_VALID_ALL \
    (KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SIPI_VECTOR | \
     KVM_VCPUEVENT_VALID_SHADOW | KVM_VCPUEVENT_VALID_SMM | \
     KVM_VCPUEVENT_VALID_PAYLOAD | KVM_VCPUEVENT_VALID_TRIPLE_FAULT)
#define NESTED_SHADOW_ALL \
    (KVM_X86_SHADOW_INT_MOV_SS | KVM_X86_SHADOW_INT_STI)

/* Bytes <-> struct; checks length, flags, booleans and reserved bytes. */
bool nested_kvm_vcpu_events_decode(const uint8_t *data, size_t len,
                                   struct kvm_vcpu_events *out,
                                   GError **errp);
bool nested_kvm_vcpu_events_encode(const struct kvm_vcpu_events *in,
                                   uint8_t *data, size_t len,
                                   GError **errp);
/*
 * Zero what KVM ignores (fields whose valid flag is clear, nr fields of
 * events neither injected nor pending): KVM_GET_VCPU_EVENTS leaves stale
 * values there, and the model does not carry them.
 */
void nested_kvm_vcpu_events_canonicalize(struct kvm_vcpu_events *ev);
/* Fill the current level and the vCPU-wide fields from KVM's view. */
bool nested_event_import_vcpu_events(NestedEventState *st,
                                     const struct kvm_vcpu_events *ev,
                                     GError **errp);

/* ------------------------------------------------------------------ */
/* struct kvm_nested_state                                            */
/* ------------------------------------------------------------------ */

#define NESTED_STATE_HDR_SIZE 128u
#define NESTED_STATE_VMCS_SIZE 0x1000u
#define NESTED_STATE_SVM_MAX (NESTED_STATE_HDR_SIZE + NESTED_STATE_VMCS_SIZE)
#define NESTED_STATE_VMX_MAX \
    (NESTED_STATE_HDR_SIZE + 2 * NESTED_STATE_VMCS_SIZE)
#define NESTED_STATE_INVALID_GPA UINT64_MAX

/* vmcb_control_area offsets (arch/x86/include/asm/svm.h, APM app. B). */
#define NESTED_VMCB_INT_CTL 0x60u
#define NESTED_VMCB_INT_STATE 0x68u
#define NESTED_VMCB_EXIT_INT_INFO 0x88u
#define NESTED_VMCB_EXIT_INT_INFO_ERR 0x8cu
#define NESTED_VMCB_EVENT_INJ 0xa8u
#define NESTED_VMCB_EVENT_INJ_ERR 0xacu
#define NESTED_VMCB_NEXT_RIP 0xc8u

/* struct vmcs12 offsets (arch/x86/kvm/vmx/vmcs12.h, CHECK_OFFSET). */
#define NESTED_VMCS12_REVISION_ID 0u
#define NESTED_VMCS12_ENTRY_INTR_INFO 788u
#define NESTED_VMCS12_ENTRY_EXCEPTION_ERROR_CODE 792u
#define NESTED_VMCS12_ENTRY_INSTRUCTION_LEN 796u
#define NESTED_VMCS12_EXIT_INTR_INFO 816u
#define NESTED_VMCS12_EXIT_INTR_ERROR_CODE 820u
#define NESTED_VMCS12_IDT_VECTORING_INFO 824u
#define NESTED_VMCS12_IDT_VECTORING_ERROR_CODE 828u
#define NESTED_VMCS12_EXIT_INSTRUCTION_LEN 832u
#define NESTED_VMCS12_GUEST_INTERRUPTIBILITY 912u
#define NESTED_VMCS12_REVISION 0x11e57ed0u
#define NESTED_VMCS12_SHADOW_BIT (1u << 31)

/*
 * The parts of a kvm_nested_state blob that the event model uses.  The
 * blob's other bytes (L1's save area, the rest of vmcb12/vmcs12) are not
 * represented: restore edits the source blob in place instead.
 */
typedef struct NestedStateView {
    uint16_t flags;
    uint16_t format;
    uint32_t size;
    bool has_vmcs;              /* data.svm[0] / data.vmx[0].vmcs12 */
    bool has_shadow_vmcs;       /* data.vmx[0].shadow_vmcs12 */
    /* hdr.svm */
    uint64_t vmcb_pa;
    /* hdr.vmx */
    uint64_t vmxon_pa;
    uint64_t vmcs12_pa;
    uint16_t vmx_smm_flags;
    uint32_t vmx_flags;
    uint64_t vmx_preemption_timer_deadline;
    /* vmcb12 control area */
    uint32_t svm_int_ctl;
    uint32_t svm_int_state;
    uint32_t svm_exit_int_info;
    uint32_t svm_exit_int_info_err;
    uint32_t svm_event_inj;
    uint32_t svm_event_inj_err;
    uint64_t svm_next_rip;
    /* vmcs12 */
    uint32_t vmx_revision;
    uint32_t vmx_shadow_revision;
    uint32_t vmx_entry_intr_info;
    uint32_t vmx_entry_exception_error_code;
    uint32_t vmx_entry_instruction_len;
    uint32_t vmx_exit_intr_info;
    uint32_t vmx_exit_intr_error_code;
    uint32_t vmx_idt_vectoring_info;
    uint32_t vmx_idt_vectoring_error_code;
    uint32_t vmx_exit_instruction_len;
    uint32_t vmx_guest_interruptibility;
} NestedStateView;

/*
 * Parse a blob of len bytes.  The header's size field must fit in len;
 * bytes past size are not looked at.  Checks format, flag combinations
 * (as svm_set_nested_state()/vmx_set_nested_state() do), size against
 * what the flags require, header padding and the vmcs12 revision.
 */
bool nested_kvm_nested_state_decode(const uint8_t *data, size_t len,
                                    NestedStateView *out, GError **errp);
/* Write view->size bytes: header plus the fields above, rest zero. */
bool nested_kvm_nested_state_encode(const NestedStateView *in,
                                    uint8_t *data, size_t len,
                                    GError **errp);
/*
 * Fill the vCPU-wide nested fields and an in-flight L1-origin event
 * (vmcb12 EVENTINJ / vmcs12 VM-entry info with the valid bit) into st.
 * rip and cs_base are L2's current RIP and CS base (from KVM_GET_REGS /
 * KVM_GET_SREGS): KVM uses them as the soft event's old RIP.
 */
/*
 * Fill a soft event's old RIP, return address and CS base as SVM takes
 * them from L1: next_rip is vmcb12 NextRIP, any address at all.
 */
void nested_event_set_svm_soft_rips(NestedEvent *ev, uint64_t rip,
                                    uint64_t cs_base, uint64_t next_rip);
bool nested_event_import_nested_state(NestedEventState *st,
                                      const NestedStateView *view,
                                      uint64_t rip, uint64_t cs_base,
                                      GError **errp);

/* ------------------------------------------------------------------ */
/* Validation                                                         */
/* ------------------------------------------------------------------ */

/*
 * Every inconsistency, each as "<field path>=<value>: <reason>", in
 * a fixed order.  Empty array: the model is consistent.  Free with
 * g_ptr_array_unref().
 */
GPtrArray *nested_event_check(const NestedEventState *st);
/* Same rules; the first problem goes to errp (INCONSISTENT). */
bool nested_event_validate(const NestedEventState *st, GError **errp);
/*
 * A model that arrived in a migration stream, against the CPU state
 * that came with it: BASE_GUEST_MODE is whether that state has the vCPU
 * in guest mode.  A sender carries the model only when it holds
 * something stock QEMU cannot, so an idle one is refused too.
 */
bool nested_event_validate_received(const NestedEventState *st,
                                    bool base_guest_mode, GError **errp);

/* ------------------------------------------------------------------ */
/* Restore planning                                                   */
/* ------------------------------------------------------------------ */

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
/* Apply a plan's state edits to a blob, with bounds checks. */
bool nested_kvm_nested_state_apply(uint8_t *data, size_t len,
                                   const NestedStateEdit *edits, size_t n,
                                   GError **errp);

#endif /* TARGET_I386_NESTED_EVENTS_H */
