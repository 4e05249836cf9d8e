/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * SVM EVENTINJ/EXITINTINFO and VMX interruption-information codecs.
 */

#include <string.h>

#include "nested-intinfo.h"

const char *nested_intinfo_kind_name(NestedIntInfoKind kind)
{
    switch (kind) {
    case NESTED_INTINFO_SVM_EVENTINJ:
        return "svm.event_inj";
    case NESTED_INTINFO_SVM_EXITINTINFO:
        return "svm.exit_int_info";
    case NESTED_INTINFO_VMX_ENTRY:
        return "vmx.vm_entry_intr_info";
    case NESTED_INTINFO_VMX_IDT_VECTORING:
        return "vmx.idt_vectoring_info";
    case NESTED_INTINFO_VMX_EXIT:
        return "vmx.vm_exit_intr_info";
    }
    return "intinfo";
}

static bool kind_is_known(NestedIntInfoKind kind)
{
    return kind >= NESTED_INTINFO_SVM_EVENTINJ &&
           kind <= NESTED_INTINFO_VMX_EXIT;
}

/*
 * Which type numbers each word may carry:
 * APM 15.20: 0 INTR, 2 NMI, 3 exception, 4 software interrupt; the rest
 * are reserved (EXITINTINFO reuses the same format, APM 15.7.2).
 * SDM 24.8.3: entry allows all but 1 (7 = other event, i.e. MTF).
 * SDM 24.9.3: IDT-vectoring never reports 1 or 7.
 * SDM 24.9.2: VM-exit interruption info never reports 1, 4 or 7 (a
 * software interrupt cannot itself cause a VM exit).
 */
static bool type_allowed(NestedIntInfoKind kind, uint8_t type)
{
    switch (kind) {
    case NESTED_INTINFO_SVM_EVENTINJ:
    case NESTED_INTINFO_SVM_EXITINTINFO:
        return type == 0 || type == 2 || type == 3 || type == 4;
    case NESTED_INTINFO_VMX_ENTRY:
        return type <= 7 && type != 1;
    case NESTED_INTINFO_VMX_IDT_VECTORING:
        return type <= 6 && type != 1;
    case NESTED_INTINFO_VMX_EXIT:
        return type == 0 || type == 2 || type == 3 || type == 5 ||
               type == 6;
    }
    return false;
}

/*
 * SVM: bits 30:12 reserved.  VMX entry: bits 30:12 reserved.  VMX exit
 * and IDT-vectoring: bit 12 is NMI unblocking (undefined for IDT-
 * vectoring, but preserved), bits 30:13 reserved.
 */
static uint32_t reserved_mask(NestedIntInfoKind kind)
{
    switch (kind) {
    case NESTED_INTINFO_SVM_EVENTINJ:
    case NESTED_INTINFO_SVM_EXITINTINFO:
    case NESTED_INTINFO_VMX_ENTRY:
        return 0x7ffff000u;
    case NESTED_INTINFO_VMX_IDT_VECTORING:
    case NESTED_INTINFO_VMX_EXIT:
        return 0x7fffe000u;
    }
    return 0xffffffffu;
}

static bool kind_has_bit12(NestedIntInfoKind kind)
{
    return kind == NESTED_INTINFO_VMX_IDT_VECTORING ||
           kind == NESTED_INTINFO_VMX_EXIT;
}

bool nested_intinfo_decode(NestedIntInfoKind kind, uint32_t raw,
                           NestedIntInfo *out, GError **errp)
{
    const char *name = nested_intinfo_kind_name(kind);
    uint32_t reserved;
    uint8_t type;

    memset(out, 0, sizeof(*out));
    if (!kind_is_known(kind)) {
        g_set_error(errp, NESTED_EVENT_ERROR, NESTED_EVENT_ERROR_INVALID,
                    "kind=%d: unknown interruption-information word",
                    (int)kind);
        return false;
    }
    if (!(raw & NESTED_INTINFO_VALID)) {
        /* Hardware ignores every other bit; keep them for re-encoding. */
        out->inactive = raw;
        return true;
    }
    reserved = raw & reserved_mask(kind);
    if (reserved) {
        g_set_error(errp, NESTED_EVENT_ERROR, NESTED_EVENT_ERROR_RESERVED,
                    "%s=0x%08x: reserved bits 0x%08x set", name, raw,
                    reserved);
        return false;
    }
    type = (raw & NESTED_INTINFO_TYPE_MASK) >> NESTED_INTINFO_TYPE_SHIFT;
    if (!type_allowed(kind, type)) {
        g_set_error(errp, NESTED_EVENT_ERROR, NESTED_EVENT_ERROR_INVALID,
                    "%s=0x%08x: type %u is not valid in this field", name,
                    raw, type);
        return false;
    }
    out->valid = true;
    out->type = type;
    out->vector = raw & NESTED_INTINFO_VECTOR_MASK;
    out->error_code_valid = raw & NESTED_INTINFO_ERROR_CODE;
    out->nmi_unblocked = kind_has_bit12(kind) &&
                         (raw & NESTED_INTINFO_NMI_UNBLOCKED);
    return true;
}

bool nested_intinfo_encode(NestedIntInfoKind kind, const NestedIntInfo *in,
                           uint32_t *raw, GError **errp)
{
    const char *name = nested_intinfo_kind_name(kind);
    uint32_t word;

    if (!kind_is_known(kind)) {
        g_set_error(errp, NESTED_EVENT_ERROR, NESTED_EVENT_ERROR_INVALID,
                    "kind=%d: unknown interruption-information word",
                    (int)kind);
        return false;
    }
    if (!in->valid) {
        if (in->inactive & NESTED_INTINFO_VALID) {
            g_set_error(errp, NESTED_EVENT_ERROR,
                        NESTED_EVENT_ERROR_INVALID,
                        "%s.inactive=0x%08x: an inactive word cannot have "
                        "the valid bit", name, in->inactive);
            return false;
        }
        if (in->type || in->vector || in->error_code_valid ||
            in->nmi_unblocked) {
            g_set_error(errp, NESTED_EVENT_ERROR,
                        NESTED_EVENT_ERROR_INVALID,
                        "%s.valid=0: decoded fields must be zero in an "
                        "inactive word (stale bits go in inactive)", name);
            return false;
        }
        *raw = in->inactive;
        return true;
    }
    if (in->inactive) {
        g_set_error(errp, NESTED_EVENT_ERROR, NESTED_EVENT_ERROR_INVALID,
                    "%s.inactive=0x%08x: must be 0 in a valid word", name,
                    in->inactive);
        return false;
    }
    if (!type_allowed(kind, in->type)) {
        g_set_error(errp, NESTED_EVENT_ERROR,
                    NESTED_EVENT_ERROR_UNREPRESENTABLE,
                    "%s.type=%u: not valid in this field", name, in->type);
        return false;
    }
    if (in->nmi_unblocked && !kind_has_bit12(kind)) {
        g_set_error(errp, NESTED_EVENT_ERROR,
                    NESTED_EVENT_ERROR_UNREPRESENTABLE,
                    "%s.nmi_unblocked=1: bit 12 is reserved in this field",
                    name);
        return false;
    }
    word = NESTED_INTINFO_VALID | in->vector |
           ((uint32_t)in->type << NESTED_INTINFO_TYPE_SHIFT);
    if (in->error_code_valid) {
        word |= NESTED_INTINFO_ERROR_CODE;
    }
    if (in->nmi_unblocked) {
        word |= NESTED_INTINFO_NMI_UNBLOCKED;
    }
    *raw = word;
    return true;
}
