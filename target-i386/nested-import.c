/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * Building the event model from KVM's own view: struct kvm_vcpu_events
 * and the decoded kvm_nested_state.  What reaches the model is checked
 * first, and what it cannot hold is refused with the field named rather
 * than dropped.
 */

#include <stddef.h>
#include <string.h>

#include "nested-import.h"
#include "nested-event-info.h"

G_STATIC_ASSERT(sizeof(struct kvm_vcpu_events) == 64);
G_STATIC_ASSERT(offsetof(struct kvm_vcpu_events, exception_payload) == 56);

/* ------------------------------------------------------------------ */
/* struct kvm_vcpu_events                                             */
/* ------------------------------------------------------------------ */

typedef struct BoolField {
    const char *name;
    size_t offset;
} BoolField;

#define EV_BOOL(f) { #f, offsetof(struct kvm_vcpu_events, f) }

/* uAPI __u8 fields that KVM treats as booleans. */
static const BoolField vcpu_event_bools[] = {
    EV_BOOL(exception.injected),
    EV_BOOL(exception.has_error_code),
    EV_BOOL(exception.pending),
    EV_BOOL(interrupt.injected),
    EV_BOOL(interrupt.soft),
    EV_BOOL(nmi.injected),
    EV_BOOL(nmi.masked),
    EV_BOOL(smi.smm),
    EV_BOOL(smi.pending),
    EV_BOOL(smi.smm_inside_nmi),
    EV_BOOL(smi.latched_init),
    EV_BOOL(triple_fault.pending),
    EV_BOOL(exception_has_payload),
};

static bool check_vcpu_event_bools(const struct kvm_vcpu_events *ev,
                                   GError **errp)
{
    const uint8_t *base = (const uint8_t *)ev;
    size_t i;

    for (i = 0; i < G_N_ELEMENTS(vcpu_event_bools); i++) {
        uint8_t v = base[vcpu_event_bools[i].offset];

        if (v > 1) {
            g_set_error(errp, NESTED_EVENT_ERROR,
                        NESTED_EVENT_ERROR_INVALID,
                        "%s=%u: must be 0 or 1", vcpu_event_bools[i].name, v);
            return false;
        }
    }
    return true;
}

static bool check_vcpu_event_reserved(const struct kvm_vcpu_events *ev,
                                      GError **errp)
{
    size_t i;

    if (ev->flags & ~NESTED_VCPUEVENT_VALID_ALL) {
        g_set_error(errp, NESTED_EVENT_ERROR, NESTED_EVENT_ERROR_RESERVED,
                    "flags=0x%x: unknown bits 0x%x", ev->flags,
                    ev->flags & ~NESTED_VCPUEVENT_VALID_ALL);
        return false;
    }
    if (ev->nmi.pad) {
        g_set_error(errp, NESTED_EVENT_ERROR, NESTED_EVENT_ERROR_RESERVED,
                    "nmi.pad=%u: must be 0", ev->nmi.pad);
        return false;
    }
    for (i = 0; i < sizeof(ev->reserved); i++) {
        if (ev->reserved[i]) {
            g_set_error(errp, NESTED_EVENT_ERROR,
                        NESTED_EVENT_ERROR_RESERVED,
                        "reserved[%zu]=%u: must be 0", i, ev->reserved[i]);
            return false;
        }
    }
    if (ev->interrupt.shadow & ~NESTED_SHADOW_ALL) {
        g_set_error(errp, NESTED_EVENT_ERROR, NESTED_EVENT_ERROR_RESERVED,
                    "interrupt.shadow=0x%x: unknown bits",
                    ev->interrupt.shadow);
        return false;
    }
    return true;
}

/* What kvm_vcpu_ioctl_x86_set_vcpu_events() would reject. */
static bool check_vcpu_event_exception(const struct kvm_vcpu_events *ev,
                                       GError **errp)
{
    bool payload = ev->flags & KVM_VCPUEVENT_VALID_PAYLOAD;

    if (ev->exception.injected && ev->exception.pending) {
        g_set_error(errp, NESTED_EVENT_ERROR, NESTED_EVENT_ERROR_INVALID,
                    "exception.pending=1: exception also injected");
        return false;
    }
    if (!payload && (ev->exception.pending || ev->exception_has_payload)) {
        g_set_error(errp, NESTED_EVENT_ERROR, NESTED_EVENT_ERROR_INVALID,
                    "exception.pending=%u: pending exceptions and payloads "
                    "need KVM_VCPUEVENT_VALID_PAYLOAD",
                    ev->exception.pending);
        return false;
    }
    if (ev->exception_has_payload && !ev->exception.pending) {
        g_set_error(errp, NESTED_EVENT_ERROR, NESTED_EVENT_ERROR_INVALID,
                    "exception_has_payload=1: only a pending exception "
                    "carries a payload");
        return false;
    }
    if ((ev->exception.injected || ev->exception.pending) &&
        (ev->exception.nr > 31 || ev->exception.nr == NESTED_VECTOR_NMI)) {
        g_set_error(errp, NESTED_EVENT_ERROR, NESTED_EVENT_ERROR_INVALID,
                    "exception.nr=%u: not an exception vector",
                    ev->exception.nr);
        return false;
    }
    return true;
}

static bool import_injected(NestedEventLevel *lv,
                            const struct kvm_vcpu_events *ev, GError **errp)
{
    NestedEvent *inj = &lv->injected;
    int count = !!ev->exception.injected + !!ev->interrupt.injected +
                !!ev->nmi.injected;

    if (count > 1) {
        g_set_error(errp, NESTED_EVENT_ERROR, NESTED_EVENT_ERROR_INVALID,
                    "exception.injected=%u: with interrupt.injected=%u and "
                    "nmi.injected=%u; only one event is delivered at a time",
                    ev->exception.injected, ev->interrupt.injected,
                    ev->nmi.injected);
        return false;
    }
    memset(inj, 0, sizeof(*inj));
    if (ev->interrupt.injected && ev->interrupt.soft) {
        /* KVM_GET_VCPU_EVENTS never reports one: no length, no RIPs. */
        g_set_error(errp, NESTED_EVENT_ERROR,
                    NESTED_EVENT_ERROR_UNREPRESENTABLE,
                    "interrupt.soft=1: no instruction length or return "
                    "address for a soft interrupt in kvm_vcpu_events");
        return false;
    }
    if (count == 0) {
        return true;
    }
    inj->valid = true;
    inj->origin = NESTED_ORIGIN_L0;
    if (ev->exception.injected) {
        inj->type = NESTED_EVENT_HW_EXCEPTION;
        inj->vector = ev->exception.nr;
        inj->has_error_code = ev->exception.has_error_code;
        inj->error_code = inj->has_error_code ? ev->exception.error_code : 0;
    } else if (ev->interrupt.injected) {
        inj->type = NESTED_EVENT_EXT_INTR;
        inj->vector = ev->interrupt.nr;
    } else {
        inj->type = NESTED_EVENT_NMI;
        inj->vector = NESTED_VECTOR_NMI;
    }
    return true;
}

static void import_pending_exception(NestedEventLevel *lv,
                                     const struct kvm_vcpu_events *ev)
{
    NestedPendingException *ex = &lv->exception;

    memset(ex, 0, sizeof(*ex));
    if (!ev->exception.pending) {
        return;
    }
    ex->pending = true;
    ex->vector = ev->exception.nr;
    ex->has_error_code = ev->exception.has_error_code;
    ex->error_code = ex->has_error_code ? ev->exception.error_code : 0;
    ex->has_payload = ev->exception_has_payload;
    ex->payload = ex->has_payload ? ev->exception_payload : 0;
}

static bool same_injected(const NestedEvent *a, const NestedEvent *b)
{
    return a->type == b->type && a->vector == b->vector &&
           a->has_error_code == b->has_error_code &&
           a->error_code == b->error_code;
}

bool nested_event_import_vcpu_events(NestedEventState *st,
                                     const struct kvm_vcpu_events *ev,
                                     GError **errp)
{
    NestedEventLevel *lv = st->guest_mode ? &st->l2 : &st->l1;
    NestedEvent keep = lv->injected;

    if (!check_vcpu_event_reserved(ev, errp) ||
        !check_vcpu_event_bools(ev, errp) ||
        !check_vcpu_event_exception(ev, errp)) {
        return false;
    }
    /*
     * An L1-origin event imported from the nested state wins.  KVM may
     * also report it here: when an entry right after L1's VMRUN is
     * cancelled, KVM moves vmcb02's copy of EVENTINJ into its own queue
     * while the cached vmcb12 keeps it.  Then both describe one event.
     */
    if (keep.valid && keep.origin == NESTED_ORIGIN_L1) {
        NestedEventLevel kvm;

        if (!import_injected(&kvm, ev, errp)) {
            return false;
        }
        if (kvm.injected.valid && !same_injected(&kvm.injected, &keep)) {
            g_set_error(errp, NESTED_EVENT_ERROR,
                        NESTED_EVENT_ERROR_INVALID,
                        "l2.injected.type=%s: KVM reports %s vector %u "
                        "while L1's %s vector %u waits in the nested state",
                        nested_event_type_name(kvm.injected.type),
                        nested_event_type_name(kvm.injected.type),
                        kvm.injected.vector, nested_event_type_name(keep.type),
                        keep.vector);
            return false;
        }
    } else if (!import_injected(lv, ev, errp)) {
        return false;
    }
    import_pending_exception(lv, ev);
    if (ev->flags & KVM_VCPUEVENT_VALID_NMI_PENDING) {
        lv->nmi_pending = ev->nmi.pending;
    }
    lv->nmi_masked = ev->nmi.masked;
    if (ev->flags & KVM_VCPUEVENT_VALID_SHADOW) {
        lv->interrupt_shadow = ev->interrupt.shadow;
    }
    st->sipi_vector_valid = ev->flags & KVM_VCPUEVENT_VALID_SIPI_VECTOR;
    st->sipi_vector = st->sipi_vector_valid ? ev->sipi_vector : 0;
    if (ev->flags & KVM_VCPUEVENT_VALID_SMM) {
        st->smi.smm = ev->smi.smm;
        st->smi.pending = ev->smi.pending;
        st->smi.smm_inside_nmi = ev->smi.smm_inside_nmi;
        st->smi.latched_init = ev->smi.latched_init;
    }
    if (ev->flags & KVM_VCPUEVENT_VALID_TRIPLE_FAULT) {
        st->triple_fault_pending = ev->triple_fault.pending;
    }
    return true;
}

/* ------------------------------------------------------------------ */
/* The decoded kvm_nested_state                                       */
/* ------------------------------------------------------------------ */

static bool import_svm_event(NestedEventState *st, const NestedStateView *v,
                             uint64_t rip, uint64_t cs_base, GError **errp)
{
    NestedEvent ev;

    if (!nested_event_from_svm(NESTED_INTINFO_SVM_EVENTINJ, v->svm_event_inj,
                               v->svm_event_inj_err, &ev, errp)) {
        return false;
    }
    if (ev.valid && nested_event_type_is_soft(ev.type)) {
        nested_event_set_svm_soft_rips(&ev, rip, cs_base, v->svm_next_rip);
    }
    st->l2.injected = ev;
    return true;
}

static bool import_vmx_event(NestedEventState *st, const NestedStateView *v,
                             uint64_t rip, uint64_t cs_base, GError **errp)
{
    NestedEvent ev;

    if (!nested_event_from_vmx(NESTED_INTINFO_VMX_ENTRY,
                               v->vmx_entry_intr_info,
                               v->vmx_entry_exception_error_code,
                               v->vmx_entry_instruction_len, &ev, errp)) {
        return false;
    }
    if (ev.valid && nested_event_type_is_soft(ev.type)) {
        nested_event_set_vmx_soft_rips(&ev, rip, cs_base);
    }
    /*
     * prepare_vmcs02_early() injects from vmcs12 only while the nested
     * run is pending; otherwise the word is a leftover of the last entry.
     */
    if (ev.valid && !(v->flags & KVM_STATE_NESTED_RUN_PENDING)) {
        return true;
    }
    st->l2.injected = ev;
    return true;
}

/*
 * KVM caches "NMIs known unmasked" per VMCS and answers
 * KVM_GET_VCPU_EVENTS' nmi.masked from the cache.  prepare_vmcs02_early()
 * sets the cache from vmcs12's interruptibility even when it injects
 * L1's NMI, and once the CPU has delivered that NMI (virtual-NMI
 * blocking, SDM Vol. 3C 27.6.1) nothing updates it until an exit that
 * reads the field.  So KVM can report L2 unmasked inside L2's NMI
 * handler, and a destination given that clears the blocking bit.  The
 * nested state reads the field itself.
 */
bool nested_event_import_vmx_nmi_blocking(NestedEventState *st,
                                          const NestedStateView *v)
{
    if (st->vendor != NESTED_VENDOR_VMX || !st->guest_mode ||
        !v->has_vmcs || st->l2.nmi_masked ||
        !(v->vmx_guest_interruptibility & NESTED_VMX_GII_BLOCKING_BY_NMI)) {
        return false;
    }
    st->l2.nmi_masked = true;
    return true;
}

bool nested_event_import_nested_state(NestedEventState *st,
                                      const NestedStateView *v,
                                      uint64_t rip, uint64_t cs_base,
                                      GError **errp)
{
    bool svm = v->format == KVM_STATE_NESTED_FORMAT_SVM;

    st->vendor = svm ? NESTED_VENDOR_SVM : NESTED_VENDOR_VMX;
    st->guest_mode = v->flags & KVM_STATE_NESTED_GUEST_MODE;
    st->nested_run_pending = v->flags & KVM_STATE_NESTED_RUN_PENDING;
    st->gif = svm ? !!(v->flags & KVM_STATE_NESTED_GIF_SET) : true;
    memset(&st->l2.injected, 0, sizeof(st->l2.injected));
    if (!st->guest_mode || !v->has_vmcs) {
        return true;
    }
    if (svm) {
        return import_svm_event(st, v, rip, cs_base, errp);
    }
    return import_vmx_event(st, v, rip, cs_base, errp);
}
