/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * Nested-virtualization event model: the injected-event state of L1 and
 * L2 as the fork mirrors it.  The encodings of that state live beside
 * it: nested-intinfo.h (SVM/VMX words), nested-state.h
 * (kvm_nested_state), nested-import.h (building the model from KVM),
 * nested-validate.h and nested-restore.h.
 *
 * Pure C11 + GLib; no QEMU include, so that it can be unit-tested and
 * fuzzed on its own.  See docs/event-model.rst for the design.
 */

#ifndef TARGET_I386_NESTED_EVENTS_H
#define TARGET_I386_NESTED_EVENTS_H

#include <stdbool.h>
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

/* Set a NESTED_EVENT_ERROR of code on errp; returns false, for "return". */
bool G_GNUC_PRINTF(3, 4) nested_event_fail(GError **errp, int code,
                                           const char *fmt, ...);

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

/*
 * #BP and #OF, the vectors of INT3 and INTO: the exceptions KVM treats
 * as software ones whatever their type (kvm_exception_is_soft()).
 */
static inline bool nested_vector_is_bp_or_of(unsigned vector)
{
    return vector == NESTED_VECTOR_BP || vector == NESTED_VECTOR_OF;
}
#define NESTED_VECTOR_PF 14
#define NESTED_MAX_INSN_LEN 15
/* process_nmi() in KVM's x86.c: one NMI running plus one pending. */
#define NESTED_MAX_PENDING_NMI 2
/* The bits NestedEventLevel.interrupt_shadow may hold. */
#define NESTED_SHADOW_ALL \
    (KVM_X86_SHADOW_INT_MOV_SS | KVM_X86_SHADOW_INT_STI)

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

/*
 * Fill a soft event's old RIP, return address and CS base as SVM takes
 * them from L1: next_rip is vmcb12 NextRIP, any address at all.
 */
void nested_event_set_svm_soft_rips(NestedEvent *ev, uint64_t rip,
                                    uint64_t cs_base, uint64_t next_rip);
/* The same as VMX takes them: RIP plus ev->insn_len. */
void nested_event_set_vmx_soft_rips(NestedEvent *ev, uint64_t rip,
                                    uint64_t cs_base);

#endif /* TARGET_I386_NESTED_EVENTS_H */
