/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * Event model: initial state, event types and the facts about a state
 * that other files ask for.
 */

#include <string.h>

#include "nested-events.h"

GQuark nested_event_error_quark(void)
{
    return g_quark_from_static_string("nested-event-error-quark");
}

bool nested_event_fail(GError **errp, int code, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    g_propagate_error(errp, g_error_new_valist(NESTED_EVENT_ERROR, code,
                                               fmt, ap));
    va_end(ap);
    return false;
}

void nested_event_state_init(NestedEventState *st, NestedVendor vendor)
{
    memset(st, 0, sizeof(*st));
    st->vendor = vendor;
    /* GIF is architecturally set unless L1 ran CLGI. */
    st->gif = true;
}

const char *nested_event_type_name(uint8_t type)
{
    switch (type) {
    case NESTED_EVENT_EXT_INTR:
        return "ext-intr";
    case NESTED_EVENT_NMI:
        return "nmi";
    case NESTED_EVENT_HW_EXCEPTION:
        return "hw-exception";
    case NESTED_EVENT_SOFT_INTR:
        return "soft-intr";
    case NESTED_EVENT_PRIV_SOFT_EXCEPTION:
        return "priv-soft-exception";
    case NESTED_EVENT_SOFT_EXCEPTION:
        return "soft-exception";
    case NESTED_EVENT_OTHER:
        return "other";
    }
    return "reserved";
}

bool nested_event_type_is_soft(uint8_t type)
{
    return type == NESTED_EVENT_SOFT_INTR ||
           type == NESTED_EVENT_PRIV_SOFT_EXCEPTION ||
           type == NESTED_EVENT_SOFT_EXCEPTION;
}

/*
 * #DF, #TS, #NP, #SS, #GP, #PF, #AC and #CP.  AMD's #SX (30) also pushes
 * one, but KVM never injects it and VMX's VM-entry checks reject an error
 * code on it, so the model does not allow it either.
 */
bool nested_vector_has_error_code(uint8_t vector)
{
    switch (vector) {
    case 8:
    case 10:
    case 11:
    case 12:
    case 13:
    case 14:
    case 17:
    case 21:
        return true;
    }
    return false;
}

const NestedEventLevel *nested_event_current_level(const NestedEventState *st)
{
    return st->guest_mode ? &st->l2 : &st->l1;
}

/*
 * Stock QEMU migrates the rest of the model through its own env fields,
 * but not the origin of an injected event, nor a soft event's RIPs, nor
 * the interrupt shadow: its kvm_put_vcpu_events() never sets
 * KVM_VCPUEVENT_VALID_SHADOW, so a destination resumes a vCPU stopped
 * between STI and HLT with interrupts open, takes the wake-up interrupt
 * before the HLT and sleeps.
 */
static bool level_beyond_stock(const NestedEventLevel *lv)
{
    const NestedEvent *ev = &lv->injected;

    if (ev->valid && (ev->origin == NESTED_ORIGIN_L1 ||
                      nested_event_type_is_soft(ev->type))) {
        return true;
    }
    return lv->interrupt_shadow != 0;
}

bool nested_event_beyond_stock(const NestedEventState *st)
{
    return level_beyond_stock(&st->l1) || level_beyond_stock(&st->l2);
}

/*
 * L1 chose NextRIP freely (see nested-validate.c), so a return address
 * far from RIP is kept as it is, with no instruction length.
 */
void nested_event_set_svm_soft_rips(NestedEvent *ev, uint64_t rip,
                                    uint64_t cs_base, uint64_t next_rip)
{
    uint64_t d = next_rip - rip;

    ev->old_rip = rip;
    ev->next_rip = next_rip;
    ev->cs_base = cs_base;
    ev->insn_len = d <= NESTED_MAX_INSN_LEN ? d : 0;
}

/* VMX pushes RIP + the VM-entry instruction length, already in insn_len. */
void nested_event_set_vmx_soft_rips(NestedEvent *ev, uint64_t rip,
                                    uint64_t cs_base)
{
    ev->old_rip = rip;
    ev->next_rip = rip + ev->insn_len;
    ev->cs_base = cs_base;
}
