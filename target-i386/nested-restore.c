/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * Restore planning: from a model and the destination's capabilities to
 * the exact KVM state to write, or a refusal naming the field.
 *
 * The central rule: an event L1 injected into L2 that is still in flight
 * goes back through the nested state (vmcb12 EVENTINJ / vmcs12 VM-entry
 * interruption information with the valid bit), never through
 * kvm_vcpu_events.  On KVM_SET_NESTED_STATE, SVM rebuilds vmcb02 from the
 * cached vmcb12 control area and derives nmi_l1_to_l2 and soft_int_*
 * from EVENTINJ alone; kvm_vcpu_events has no origin, so an NMI restored
 * there is taken as L0's own and leaves L1's NMIs masked, and a soft
 * event cannot be expressed there at all.
 */

#include <inttypes.h>
#include <stdarg.h>
#include <string.h>

#include "nested-bytes.h"
#include "nested-event-info.h"
#include "nested-restore.h"
#include "nested-state.h"
#include "nested-validate.h"

#define NS_DATA NESTED_STATE_HDR_SIZE

typedef struct Planner {
    const NestedEventState *st;
    const NestedRestoreCaps *caps;
    NestedRestorePlan *plan;
    const char *cur;            /* "l1" or "l2" */
    const NestedEventLevel *lv;
} Planner;

static bool G_GNUC_PRINTF(2, 3) refuse(GError **errp, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    g_propagate_error(errp, g_error_new_valist(NESTED_EVENT_ERROR,
                                               NESTED_EVENT_ERROR_REFUSED,
                                               fmt, ap));
    va_end(ap);
    return false;
}

static void add_edit(Planner *pl, uint32_t offset, uint8_t width,
                     uint64_t mask, uint64_t value, const char *field)
{
    NestedRestorePlan *plan = pl->plan;

    g_assert(plan->n_state_edits < NESTED_PLAN_MAX_STATE_EDITS);
    plan->state_edits[plan->n_state_edits++] = (NestedStateEdit) {
        .offset = offset, .width = width, .mask = mask,
        .value = value & mask, .field = field,
    };
}

static void add_reg(Planner *pl, NestedReg reg, bool expect_only,
                    uint64_t value)
{
    NestedRestorePlan *plan = pl->plan;

    g_assert(plan->n_reg_edits < NESTED_PLAN_MAX_REG_EDITS);
    plan->reg_edits[plan->n_reg_edits++] = (NestedRegEdit) {
        .reg = reg, .expect_only = expect_only, .value = value,
    };
}

/*
 * KVM snapshots the soft event's old RIP and CS base from the vCPU when
 * the nested state is set (6.1) or before the next run (later kernels),
 * so registers must hold them; apply register edits before
 * KVM_SET_NESTED_STATE.
 */
static void add_soft_regs(Planner *pl, const NestedEvent *ev)
{
    add_reg(pl, NESTED_REG_RIP, false, ev->old_rip);
    add_reg(pl, NESTED_REG_CS_BASE, true, ev->cs_base);
}

static bool check_destination(Planner *pl, GError **errp)
{
    const NestedEventState *st = pl->st;
    const NestedRestoreCaps *caps = pl->caps;

    if (st->guest_mode && !caps->nested_state) {
        return refuse(errp, "guest_mode=1: destination lacks "
                      "KVM_CAP_NESTED_STATE");
    }
    if (!st->gif && !caps->nested_state) {
        return refuse(errp, "gif=0: destination lacks KVM_CAP_NESTED_STATE "
                      "(GIF lives in kvm_nested_state.flags)");
    }
    if ((st->guest_mode || !st->gif) && caps->vendor != st->vendor) {
        return refuse(errp, "vendor=%s: destination is %s",
                      st->vendor == NESTED_VENDOR_SVM ? "svm" : "vmx",
                      caps->vendor == NESTED_VENDOR_SVM ? "svm" :
                      caps->vendor == NESTED_VENDOR_VMX ? "vmx" : "none");
    }
    return true;
}

/* ------------------------------------------------------------------ */
/* The injected event                                                 */
/* ------------------------------------------------------------------ */

static bool plan_svm_l1_event(Planner *pl, const NestedEvent *ev,
                              GError **errp)
{
    g_autoptr(GError) local = NULL;
    uint32_t raw, err;

    if (!nested_event_to_svm(ev, &raw, &err, &local)) {
        return refuse(errp, "l2.injected.type=%s: %s",
                      nested_event_type_name(ev->type), local->message);
    }
    add_edit(pl, NS_DATA + NESTED_VMCB_EVENT_INJ, 4, UINT32_MAX, raw,
             "vmcb12.control.event_inj");
    add_edit(pl, NS_DATA + NESTED_VMCB_EVENT_INJ_ERR, 4, UINT32_MAX, err,
             "vmcb12.control.event_inj_err");
    if (!nested_event_type_is_soft(ev->type)) {
        return true;
    }
    if (pl->caps->nrips) {
        add_edit(pl, NS_DATA + NESTED_VMCB_NEXT_RIP, 8, UINT64_MAX,
                 ev->next_rip, "vmcb12.control.next_rip");
    } else if (ev->next_rip != ev->old_rip) {
        /* Without NRIPS, KVM pushes the current RIP as return address. */
        return refuse(errp, "l2.injected.next_rip=0x%" PRIx64 ": destination "
                      "has no NRIPS, so KVM would push RIP (old_rip=0x%"
                      PRIx64 ") as the return address", ev->next_rip,
                      ev->old_rip);
    }
    add_soft_regs(pl, ev);
    return true;
}

static bool plan_vmx_l1_event(Planner *pl, const NestedEvent *ev,
                              GError **errp)
{
    g_autoptr(GError) local = NULL;
    uint32_t raw, err, len;

    if (!nested_event_to_vmx(ev, &raw, &err, &len, &local)) {
        return refuse(errp, "l2.injected.type=%s: %s",
                      nested_event_type_name(ev->type), local->message);
    }
    if (nested_event_type_is_soft(ev->type) &&
        ev->next_rip != ev->old_rip + ev->insn_len) {
        return refuse(errp, "l2.injected.next_rip=0x%" PRIx64 ": VMX pushes "
                      "RIP + VM-entry instruction length (0x%" PRIx64 ")",
                      ev->next_rip, ev->old_rip + ev->insn_len);
    }
    add_edit(pl, NS_DATA + NESTED_VMCS12_ENTRY_INTR_INFO, 4, UINT32_MAX, raw,
             "vmcs12.vm_entry_intr_info_field");
    add_edit(pl, NS_DATA + NESTED_VMCS12_ENTRY_EXCEPTION_ERROR_CODE, 4,
             UINT32_MAX, err, "vmcs12.vm_entry_exception_error_code");
    add_edit(pl, NS_DATA + NESTED_VMCS12_ENTRY_INSTRUCTION_LEN, 4,
             UINT32_MAX, len, "vmcs12.vm_entry_instruction_len");
    if (nested_event_type_is_soft(ev->type)) {
        add_soft_regs(pl, ev);
    }
    return true;
}

/* Keep KVM from replaying a request L1 made for an earlier entry. */
static void plan_clear_l1_request(Planner *pl)
{
    if (pl->st->vendor == NESTED_VENDOR_SVM) {
        add_edit(pl, NS_DATA + NESTED_VMCB_EVENT_INJ, 4,
                 NESTED_INTINFO_VALID, 0, "vmcb12.control.event_inj");
    } else {
        add_edit(pl, NS_DATA + NESTED_VMCS12_ENTRY_INTR_INFO, 4,
                 NESTED_INTINFO_VALID, 0, "vmcs12.vm_entry_intr_info_field");
    }
}

static void plan_l0_event(Planner *pl, const NestedEvent *ev)
{
    struct kvm_vcpu_events *out = &pl->plan->events;

    switch (ev->type) {
    case NESTED_EVENT_EXT_INTR:
        out->interrupt.injected = 1;
        out->interrupt.nr = ev->vector;
        break;
    case NESTED_EVENT_NMI:
        out->nmi.injected = 1;
        break;
    case NESTED_EVENT_HW_EXCEPTION:
        out->exception.injected = 1;
        out->exception.nr = ev->vector;
        out->exception.has_error_code = ev->has_error_code;
        out->exception.error_code = ev->error_code;
        break;
    default:
        /*
         * Soft events: kvm_vcpu_events cannot carry them; KVM itself
         * relies on RIP still pointing at the instruction, which then
         * runs again.  Rewind RIP to it.
         */
        add_soft_regs(pl, ev);
        break;
    }
}

static bool plan_injected(Planner *pl, GError **errp)
{
    const NestedEvent *ev = &pl->lv->injected;
    bool l1_origin = ev->valid && ev->origin == NESTED_ORIGIN_L1;

    if (pl->st->guest_mode && !l1_origin) {
        plan_clear_l1_request(pl);
    }
    if (!ev->valid) {
        return true;
    }
    if (!l1_origin) {
        plan_l0_event(pl, ev);
        return true;
    }
    if (pl->st->vendor == NESTED_VENDOR_SVM) {
        return plan_svm_l1_event(pl, ev, errp);
    }
    return plan_vmx_l1_event(pl, ev, errp);
}

/* ------------------------------------------------------------------ */
/* The rest of kvm_vcpu_events                                        */
/* ------------------------------------------------------------------ */

static bool plan_pending_exception(Planner *pl, GError **errp)
{
    const NestedPendingException *ex = &pl->lv->exception;
    struct kvm_vcpu_events *out = &pl->plan->events;

    if (pl->caps->exception_payload) {
        out->flags |= KVM_VCPUEVENT_VALID_PAYLOAD;
    }
    if (!ex->pending) {
        return true;
    }
    if (!pl->caps->exception_payload) {
        if (pl->st->guest_mode) {
            return refuse(errp, "%s.exception.pending=1: without "
                          "KVM_CAP_EXCEPTION_PAYLOAD KVM would take it as "
                          "injected and skip L1's exception intercepts",
                          pl->cur);
        }
        if (ex->has_payload) {
            return refuse(errp, "%s.exception.has_payload=1: destination "
                          "lacks KVM_CAP_EXCEPTION_PAYLOAD", pl->cur);
        }
        /* KVM's own compatibility rule: pending reads as injected. */
        out->exception.injected = 1;
    } else {
        out->exception.pending = 1;
        out->exception_has_payload = ex->has_payload;
        out->exception_payload = ex->payload;
    }
    out->exception.nr = ex->vector;
    out->exception.has_error_code = ex->has_error_code;
    out->exception.error_code = ex->error_code;
    return true;
}

static bool plan_vcpu_wide(Planner *pl, GError **errp)
{
    const NestedEventState *st = pl->st;
    const NestedRestoreCaps *caps = pl->caps;
    struct kvm_vcpu_events *out = &pl->plan->events;

    out->flags |= KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SHADOW;
    out->nmi.pending = pl->lv->nmi_pending;
    out->nmi.masked = pl->lv->nmi_masked;
    out->interrupt.shadow = pl->lv->interrupt_shadow;
    if (st->sipi_vector_valid) {
        out->flags |= KVM_VCPUEVENT_VALID_SIPI_VECTOR;
        out->sipi_vector = st->sipi_vector;
    }
    if (caps->smm) {
        out->flags |= KVM_VCPUEVENT_VALID_SMM;
        out->smi.smm = st->smi.smm;
        out->smi.pending = st->smi.pending;
        out->smi.smm_inside_nmi = st->smi.smm_inside_nmi;
        out->smi.latched_init = st->smi.latched_init;
    } else if (st->smi.smm || st->smi.pending || st->smi.latched_init) {
        return refuse(errp, "smi.%s=1: destination lacks KVM_CAP_X86_SMM",
                      st->smi.smm ? "smm" :
                      st->smi.pending ? "pending" : "latched_init");
    }
    if (caps->triple_fault_event) {
        out->flags |= KVM_VCPUEVENT_VALID_TRIPLE_FAULT;
        out->triple_fault.pending = st->triple_fault_pending;
    } else if (st->triple_fault_pending) {
        return refuse(errp, "triple_fault_pending=1: destination lacks "
                      "KVM_CAP_X86_TRIPLE_FAULT_EVENT");
    }
    return true;
}

/*
 * A vCPU with nothing to say can go without KVM_SET_VCPU_EVENTS.  When
 * it has something, the refusal names the first such field, with its
 * level, like every other refusal.
 */
static bool check_vcpu_events_cap(Planner *pl, GError **errp)
{
    const NestedEventState *st = pl->st;
    const NestedEventLevel *lv = pl->lv;
    const struct {
        bool per_level;
        const char *field;
        unsigned value;
    } needs[] = {
        { true, "injected.valid", lv->injected.valid },
        { true, "exception.pending", lv->exception.pending },
        { true, "nmi_pending", lv->nmi_pending },
        { true, "nmi_masked", lv->nmi_masked },
        { true, "interrupt_shadow", lv->interrupt_shadow },
        { false, "sipi_vector_valid", st->sipi_vector_valid },
        { false, "smi.smm", st->smi.smm },
        { false, "smi.pending", st->smi.pending },
        { false, "smi.latched_init", st->smi.latched_init },
        { false, "triple_fault_pending", st->triple_fault_pending },
    };
    size_t i;

    if (pl->caps->vcpu_events) {
        return true;
    }
    for (i = 0; i < G_N_ELEMENTS(needs); i++) {
        if (needs[i].value) {
            return refuse(errp, "%s%s%s=%u: destination lacks "
                          "KVM_CAP_VCPU_EVENTS",
                          needs[i].per_level ? pl->cur : "",
                          needs[i].per_level ? "." : "", needs[i].field,
                          needs[i].value);
        }
    }
    return true;
}

static void plan_nested_flags(Planner *pl)
{
    const NestedEventState *st = pl->st;
    const NestedEvent *ev = &pl->lv->injected;
    bool run_pending = st->nested_run_pending;

    if (!pl->caps->nested_state || st->vendor == NESTED_VENDOR_NONE) {
        return;
    }
    if (st->vendor == NESTED_VENDOR_SVM) {
        add_edit(pl, 0, 2, KVM_STATE_NESTED_GIF_SET,
                 st->gif ? KVM_STATE_NESTED_GIF_SET : 0,
                 "kvm_nested_state.flags");
    }
    if (!st->guest_mode) {
        return;
    }
    /*
     * L1's event is restored as L1's VMRUN/VMLAUNCH asked for it, so the
     * entry must be pending too.  VMX: prepare_vmcs02_early() injects
     * from vmcs12 only then.  SVM: without it an interrupt or NMI for L1
     * that is pending at the first run exits to L1 before the entry, and
     * KVM reports nothing in EXITINTINFO for an injection that never
     * began; svm_check_nested_events() holds those exits back only while
     * nested_run_pending is set.  The torture lost #GP, #PF and INTR this
     * way once vCPUs sent each other IPIs and NMIs.
     */
    if (ev->valid && ev->origin == NESTED_ORIGIN_L1) {
        run_pending = true;
    }
    add_edit(pl, 0, 2, KVM_STATE_NESTED_RUN_PENDING,
             run_pending ? KVM_STATE_NESTED_RUN_PENDING : 0,
             "kvm_nested_state.flags");
}

bool nested_event_plan_restore(const NestedEventState *st,
                               const NestedRestoreCaps *caps,
                               NestedRestorePlan *plan, GError **errp)
{
    Planner pl = {
        .st = st, .caps = caps, .plan = plan,
        .cur = st->guest_mode ? "l2" : "l1",
        .lv = nested_event_current_level(st),
    };
    GError *local = NULL;

    memset(plan, 0, sizeof(*plan));
    if (!nested_event_validate(st, errp) ||
        !check_destination(&pl, errp)) {
        return false;
    }
    if (!check_vcpu_events_cap(&pl, errp)) {
        return false;
    }
    if (!plan_injected(&pl, &local) ||
        !plan_pending_exception(&pl, &local) ||
        !plan_vcpu_wide(&pl, &local)) {
        g_propagate_error(errp, local);
        memset(plan, 0, sizeof(*plan));
        return false;
    }
    plan_nested_flags(&pl);
    plan->set_vcpu_events = caps->vcpu_events;
    if (!caps->vcpu_events) {
        memset(&plan->events, 0, sizeof(plan->events));
    }
    return true;
}

/* ------------------------------------------------------------------ */
/* Applying the state edits                                           */
/* ------------------------------------------------------------------ */

bool nested_state_apply_edits(uint8_t *data, size_t len,
                              const NestedStateEdit *edits, size_t n,
                              GError **errp)
{
    size_t i;

    for (i = 0; i < n; i++) {
        const NestedStateEdit *e = &edits[i];
        uint8_t *p;
        uint64_t old;

        if (e->width != 2 && e->width != 4 && e->width != 8) {
            g_set_error(errp, NESTED_EVENT_ERROR, NESTED_EVENT_ERROR_INVALID,
                        "%s.width=%u: must be 2, 4 or 8", e->field,
                        e->width);
            return false;
        }
        if (e->offset > len || len - e->offset < e->width) {
            g_set_error(errp, NESTED_EVENT_ERROR,
                        NESTED_EVENT_ERROR_TRUNCATED,
                        "%s.offset=%u: outside the %zu-byte blob",
                        e->field, e->offset, len);
            return false;
        }
        p = data + e->offset;
        switch (e->width) {
        case 2:
            old = nested_ld16(p);
            nested_st16(p, (old & ~e->mask) | (e->value & e->mask));
            break;
        case 4:
            old = nested_ld32(p);
            nested_st32(p, (old & ~e->mask) | (e->value & e->mask));
            break;
        default:
            old = nested_ld64(p);
            nested_st64(p, (old & ~e->mask) | (e->value & e->mask));
            break;
        }
    }
    return true;
}
