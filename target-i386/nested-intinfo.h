/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * The interruption-information words of SVM (EVENTINJ, EXITINTINFO) and
 * VMX (VM-entry, IDT-vectoring and VM-exit interruption information),
 * bit by bit; nested-event-info.h maps them to model events.
 */

#ifndef TARGET_I386_NESTED_INTINFO_H
#define TARGET_I386_NESTED_INTINFO_H

#include <stdbool.h>
#include <stdint.h>
#include <glib.h>

#include "nested-events.h"

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

/* The word's name in errors, e.g. "svm.event_inj" */
const char *nested_intinfo_kind_name(NestedIntInfoKind kind);
/*
 * Errors name the word (e.g. "svm.event_inj=0x80000100: ...").  Reserved
 * bits and types the word never carries are refused.
 */
bool nested_intinfo_decode(NestedIntInfoKind kind, uint32_t raw,
                           NestedIntInfo *out, GError **errp);
bool nested_intinfo_encode(NestedIntInfoKind kind, const NestedIntInfo *in,
                           uint32_t *raw, GError **errp);

#endif /* TARGET_I386_NESTED_INTINFO_H */
