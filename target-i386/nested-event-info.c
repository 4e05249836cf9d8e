/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * A model event as the interruption-information words of SVM and VMX,
 * and back: the vendor rules (SVM's INT3/INTO typing, VMX's instruction
 * length) on top of the bare word codec of nested-intinfo.c.
 */

#include <string.h>

#include "nested-event-info.h"

static bool kind_is_svm(NestedIntInfoKind kind)
{
    return kind == NESTED_INTINFO_SVM_EVENTINJ ||
           kind == NESTED_INTINFO_SVM_EXITINTINFO;
}

static bool svm_type_is_soft_exception(uint8_t raw_type, uint8_t vector)
{
    return raw_type == NESTED_EVENT_HW_EXCEPTION &&
           nested_vector_is_bp_or_of(vector);
}

static void event_reset(NestedEvent *ev, NestedEventOrigin origin)
{
    memset(ev, 0, sizeof(*ev));
    ev->origin = origin;
}

/*
 * EVENTINJ is L1's request; EXITINTINFO reports an event (of either
 * origin) whose delivery was cut short, so the origin stays L0 there and
 * the caller fixes it if it knows better.
 */
static NestedEventOrigin origin_of_kind(NestedIntInfoKind kind)
{
    return kind == NESTED_INTINFO_SVM_EVENTINJ ||
           kind == NESTED_INTINFO_VMX_ENTRY ? NESTED_ORIGIN_L1
                                            : NESTED_ORIGIN_L0;
}

/*
 * The start both vendors' decoders share: check that kind belongs to the
 * vendor, decode the word and reset ev to an idle event of kind's origin.
 */
static bool event_decode_word(NestedIntInfoKind kind, bool svm, uint32_t raw,
                              NestedIntInfo *info, NestedEvent *ev,
                              GError **errp)
{
    if (kind_is_svm(kind) != svm) {
        g_set_error(errp, NESTED_EVENT_ERROR, NESTED_EVENT_ERROR_INVALID,
                    "kind=%s: not %s word", nested_intinfo_kind_name(kind),
                    svm ? "an SVM" : "a VMX");
        return false;
    }
    if (!nested_intinfo_decode(kind, raw, info, errp)) {
        return false;
    }
    event_reset(ev, origin_of_kind(kind));
    return true;
}

bool nested_event_from_svm(NestedIntInfoKind kind, uint32_t raw,
                           uint32_t err, NestedEvent *ev, GError **errp)
{
    NestedIntInfo info;

    if (!event_decode_word(kind, true, raw, &info, ev, errp)) {
        return false;
    }
    if (!info.valid) {
        return true;
    }
    ev->valid = true;
    ev->vector = info.vector;
    ev->type = info.type;
    if (info.type == NESTED_EVENT_NMI) {
        ev->vector = NESTED_VECTOR_NMI;
    } else if (svm_type_is_soft_exception(info.type, info.vector)) {
        ev->type = NESTED_EVENT_SOFT_EXCEPTION;
    }
    ev->has_error_code = info.error_code_valid;
    ev->error_code = info.error_code_valid ? err : 0;
    return true;
}

bool nested_event_to_svm(const NestedEvent *ev, uint32_t *raw,
                         uint32_t *err, GError **errp)
{
    NestedIntInfo info = { 0 };

    *err = 0;
    if (!ev->valid) {
        *raw = 0;
        return true;
    }
    info.valid = true;
    info.vector = ev->vector;
    switch (ev->type) {
    case NESTED_EVENT_EXT_INTR:
    case NESTED_EVENT_SOFT_INTR:
        info.type = ev->type;
        break;
    case NESTED_EVENT_NMI:
        info.type = ev->type;
        info.vector = NESTED_VECTOR_NMI;
        break;
    case NESTED_EVENT_HW_EXCEPTION:
        if (nested_vector_is_bp_or_of(ev->vector)) {
            g_set_error(errp, NESTED_EVENT_ERROR,
                        NESTED_EVENT_ERROR_UNREPRESENTABLE,
                        "type=hw-exception vector=%u: SVM reads type 3 with "
                        "#BP/#OF as INT3/INTO", ev->vector);
            return false;
        }
        info.type = ev->type;
        break;
    case NESTED_EVENT_SOFT_EXCEPTION:
        if (!nested_vector_is_bp_or_of(ev->vector)) {
            g_set_error(errp, NESTED_EVENT_ERROR,
                        NESTED_EVENT_ERROR_UNREPRESENTABLE,
                        "type=soft-exception vector=%u: SVM has INT3/INTO "
                        "only", ev->vector);
            return false;
        }
        info.type = NESTED_EVENT_HW_EXCEPTION;
        break;
    default:
        g_set_error(errp, NESTED_EVENT_ERROR,
                    NESTED_EVENT_ERROR_UNREPRESENTABLE,
                    "type=%s: SVM EVENTINJ has no such type",
                    nested_event_type_name(ev->type));
        return false;
    }
    info.error_code_valid = ev->has_error_code;
    if (!nested_intinfo_encode(NESTED_INTINFO_SVM_EVENTINJ, &info, raw,
                               errp)) {
        return false;
    }
    *err = ev->has_error_code ? ev->error_code : 0;
    return true;
}

bool nested_event_from_vmx(NestedIntInfoKind kind, uint32_t raw,
                           uint32_t err, uint32_t insn_len,
                           NestedEvent *ev, GError **errp)
{
    NestedIntInfo info;

    if (!event_decode_word(kind, false, raw, &info, ev, errp)) {
        return false;
    }
    if (!info.valid) {
        return true;
    }
    ev->valid = true;
    ev->type = info.type;
    ev->vector = info.vector;
    ev->has_error_code = info.error_code_valid;
    ev->error_code = info.error_code_valid ? err : 0;
    if (nested_event_type_is_soft(info.type)) {
        if (insn_len > NESTED_MAX_INSN_LEN) {
            g_set_error(errp, NESTED_EVENT_ERROR,
                        NESTED_EVENT_ERROR_INVALID,
                        "%s.instruction_len=%u: longer than %u bytes",
                        nested_intinfo_kind_name(kind), insn_len,
                        NESTED_MAX_INSN_LEN);
            return false;
        }
        ev->insn_len = insn_len;
    }
    return true;
}

bool nested_event_to_vmx(const NestedEvent *ev, uint32_t *raw,
                         uint32_t *err, uint32_t *insn_len, GError **errp)
{
    NestedIntInfo info = { 0 };

    *err = 0;
    *insn_len = 0;
    if (!ev->valid) {
        *raw = 0;
        return true;
    }
    info.valid = true;
    info.type = ev->type;
    info.vector = ev->vector;
    info.error_code_valid = ev->has_error_code;
    if (!nested_intinfo_encode(NESTED_INTINFO_VMX_ENTRY, &info, raw, errp)) {
        return false;
    }
    *err = ev->has_error_code ? ev->error_code : 0;
    *insn_len = nested_event_type_is_soft(ev->type) ? ev->insn_len : 0;
    return true;
}
