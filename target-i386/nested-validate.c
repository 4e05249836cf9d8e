/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * Validation of the event model: every rule a state must meet before it
 * is restored or accepted from a migration stream.
 */

#include <inttypes.h>
#include <stdarg.h>
#include <string.h>

#include "nested-validate.h"

typedef struct Checker {
    GPtrArray *problems;
} Checker;

static void G_GNUC_PRINTF(2, 3) problem(Checker *ck, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    g_ptr_array_add(ck->problems, g_strdup_vprintf(fmt, ap));
    va_end(ap);
}

static bool event_is_exception(const NestedEvent *ev)
{
    return ev->valid && (ev->type == NESTED_EVENT_HW_EXCEPTION ||
                         ev->type == NESTED_EVENT_SOFT_EXCEPTION ||
                         ev->type == NESTED_EVENT_PRIV_SOFT_EXCEPTION);
}

static bool level_is_idle(const NestedEventLevel *lv)
{
    NestedEventLevel idle;

    memset(&idle, 0, sizeof(idle));
    return memcmp(lv, &idle, sizeof(idle)) == 0;
}

static void check_event_type(Checker *ck, const char *p, const NestedEvent *ev)
{
    switch (ev->type) {
    case NESTED_EVENT_EXT_INTR:
        /*
         * Any vector: the 8259 delivers 8-15 in real mode (BIOS IRQ 0-7)
         * and the local APIC accepts 16-255, so no range is impossible.
         */
        break;
    case NESTED_EVENT_NMI:
        if (ev->vector != NESTED_VECTOR_NMI) {
            problem(ck, "%s.injected.vector=%u: NMI must use vector 2", p,
                    ev->vector);
        }
        break;
    case NESTED_EVENT_HW_EXCEPTION:
        if (ev->vector > 31) {
            problem(ck, "%s.injected.vector=%u: exceptions use vectors "
                    "0-31", p, ev->vector);
        } else if (ev->vector == NESTED_VECTOR_NMI) {
            problem(ck, "%s.injected.vector=2: vector 2 is the NMI, not a "
                    "hardware exception", p);
        }
        break;
    case NESTED_EVENT_SOFT_INTR:
        break;
    case NESTED_EVENT_PRIV_SOFT_EXCEPTION:
        if (ev->vector != NESTED_VECTOR_DB) {
            problem(ck, "%s.injected.vector=%u: privileged software "
                    "exception (INT1) must use vector 1", p, ev->vector);
        }
        break;
    case NESTED_EVENT_SOFT_EXCEPTION:
        if (!nested_vector_is_bp_or_of(ev->vector)) {
            problem(ck, "%s.injected.vector=%u: software exception must be "
                    "#BP (3) or #OF (4)", p, ev->vector);
        }
        break;
    case NESTED_EVENT_OTHER:
        /* SDM 26.2.1.3: type 7 (MTF) needs vector 0 and VMX. */
        if (ev->origin != NESTED_ORIGIN_L1) {
            problem(ck, "%s.injected.type=7: 'other event' exists only in "
                    "L1's VM-entry interruption information", p);
        } else if (ev->vector != 0) {
            problem(ck, "%s.injected.vector=%u: 'other event' (pending MTF) "
                    "must use vector 0", p, ev->vector);
        }
        break;
    default:
        problem(ck, "%s.injected.type=%u: reserved event type", p, ev->type);
        break;
    }
}

static void check_error_code(Checker *ck, const char *p, const NestedEvent *ev)
{
    if (!ev->has_error_code) {
        if (ev->error_code) {
            problem(ck, "%s.injected.error_code=0x%x: set without "
                    "has_error_code", p, ev->error_code);
        }
        return;
    }
    if (ev->type != NESTED_EVENT_HW_EXCEPTION) {
        problem(ck, "%s.injected.has_error_code=1: type %s never pushes an "
                "error code", p, nested_event_type_name(ev->type));
    } else if (!nested_vector_has_error_code(ev->vector)) {
        problem(ck, "%s.injected.has_error_code=1: vector %u never pushes "
                "an error code", p, ev->vector);
    }
}

/*
 * next_rip - old_rip is taken modulo 2^64, so an instruction that wraps
 * past the top of the address space is accepted; legacy EIP wrap at 4 GiB
 * is accepted too when both values fit in 32 bits.  Anything else more
 * than 15 bytes ahead is "before" old_rip.
 */
static uint64_t soft_distance(const NestedEvent *ev)
{
    uint64_t d = ev->next_rip - ev->old_rip;

    if (d > NESTED_MAX_INSN_LEN && ev->next_rip <= UINT32_MAX &&
        ev->old_rip <= UINT32_MAX) {
        d = (uint32_t)(ev->next_rip - ev->old_rip);
    }
    return d;
}

/*
 * On SVM, L1 names the return address of a soft event it injects in
 * vmcb12 NextRIP (AMD APM vol. 2, 15.20), and nothing ties that address
 * to a backing instruction: any value is architectural.  insn_len is
 * then informative only, 0 when NextRIP is not 1 to 15 bytes ahead.
 */
static bool soft_next_rip_is_free(const NestedEventState *st,
                                  const NestedEvent *ev)
{
    return st->vendor == NESTED_VENDOR_SVM && ev->origin == NESTED_ORIGIN_L1;
}

static void check_soft(Checker *ck, const NestedEventState *st,
                       const char *p, const NestedEvent *ev)
{
    uint64_t d;

    if (!nested_event_type_is_soft(ev->type)) {
        if (ev->insn_len || ev->old_rip || ev->next_rip || ev->cs_base) {
            problem(ck, "%s.injected.insn_len=%u: instruction fields on a "
                    "%s event", p, ev->insn_len,
                    nested_event_type_name(ev->type));
        }
        return;
    }
    if (ev->insn_len > NESTED_MAX_INSN_LEN) {
        problem(ck, "%s.injected.insn_len=%u: longer than 15 bytes", p,
                ev->insn_len);
        return;
    }
    if (soft_next_rip_is_free(st, ev)) {
        d = soft_distance(ev);
        if (ev->insn_len && d != ev->insn_len) {
            problem(ck, "%s.injected.insn_len=%u: next_rip=0x%" PRIx64
                    " is %" PRIu64 " bytes after old_rip=0x%" PRIx64, p,
                    ev->insn_len, ev->next_rip, d, ev->old_rip);
        }
        return;
    }
    /*
     * Zero length is what L1 asks for when it advanced RIP itself (SVM
     * without NRIPS, VMX with zero-length injection): allowed only there.
     */
    if (ev->insn_len == 0 &&
        !(ev->origin == NESTED_ORIGIN_L1 && ev->next_rip == ev->old_rip)) {
        problem(ck, "%s.injected.insn_len=0: soft event needs an "
                "instruction length of 1 to 15", p);
        return;
    }
    d = soft_distance(ev);
    if (d > NESTED_MAX_INSN_LEN) {
        problem(ck, "%s.injected.next_rip=0x%" PRIx64 ": before old_rip="
                "0x%" PRIx64, p, ev->next_rip, ev->old_rip);
    } else if (d != ev->insn_len) {
        problem(ck, "%s.injected.next_rip=0x%" PRIx64 ": %" PRIu64
                " bytes after old_rip=0x%" PRIx64 " but insn_len=%u", p,
                ev->next_rip, d, ev->old_rip, ev->insn_len);
    }
}

static void check_injected(Checker *ck, const NestedEventState *st,
                           const char *p, const NestedEvent *ev)
{
    if (!ev->valid) {
        NestedEvent none;

        memset(&none, 0, sizeof(none));
        if (memcmp(ev, &none, sizeof(none))) {
            problem(ck, "%s.injected.valid=0: other fields must be zero", p);
        }
        return;
    }
    if (ev->origin > NESTED_ORIGIN_L1) {
        problem(ck, "%s.injected.origin=%u: reserved origin", p, ev->origin);
    } else if (ev->origin == NESTED_ORIGIN_L1 && !st->guest_mode) {
        problem(ck, "%s.injected.origin=L1: L1-origin event while not in "
                "guest mode", p);
    } else if (ev->origin == NESTED_ORIGIN_L1 && ev == &st->l1.injected) {
        problem(ck, "l1.injected.origin=L1: L1 injects into L2, not into "
                "itself");
    }
    if (ev->type == NESTED_EVENT_OTHER && st->vendor != NESTED_VENDOR_VMX) {
        problem(ck, "%s.injected.type=7: 'other event' exists only on VMX",
                p);
    }
    check_event_type(ck, p, ev);
    check_error_code(ck, p, ev);
    check_soft(ck, st, p, ev);
}

static void check_pending_exception(Checker *ck, const char *p,
                                    const NestedEventLevel *lv)
{
    const NestedPendingException *ex = &lv->exception;

    if (!ex->pending) {
        if (ex->vector || ex->has_error_code || ex->error_code ||
            ex->has_payload || ex->payload) {
            problem(ck, "%s.exception.pending=0: other fields must be zero",
                    p);
        }
        return;
    }
    if (ex->vector > 31 || ex->vector == NESTED_VECTOR_NMI) {
        problem(ck, "%s.exception.vector=%u: not an exception vector", p,
                ex->vector);
    }
    if (ex->has_error_code && !nested_vector_has_error_code(ex->vector)) {
        problem(ck, "%s.exception.has_error_code=1: vector %u never pushes "
                "an error code", p, ex->vector);
    }
    if (!ex->has_error_code && ex->error_code) {
        problem(ck, "%s.exception.error_code=0x%x: set without "
                "has_error_code", p, ex->error_code);
    }
    /* kvm_deliver_exception_payload() knows only #DB and #PF. */
    if (ex->has_payload && ex->vector != NESTED_VECTOR_DB &&
        ex->vector != NESTED_VECTOR_PF) {
        problem(ck, "%s.exception.has_payload=1: vector %u has no payload "
                "(only #DB and #PF)", p, ex->vector);
    }
    if (!ex->has_payload && ex->payload) {
        problem(ck, "%s.exception.payload=0x%" PRIx64 ": set without "
                "has_payload", p, ex->payload);
    }
    /* KVM's queue (and kvm_vcpu_events) has a single exception slot. */
    if (event_is_exception(&lv->injected)) {
        problem(ck, "%s.exception.pending=1: exception %u is pending while "
                "exception %u is injected; KVM holds one exception", p,
                ex->vector, lv->injected.vector);
    } else if (lv->injected.valid &&
               lv->injected.origin == NESTED_ORIGIN_L1) {
        /*
         * A fault while vectoring L1's event that L0 intercepted and
         * handed back to L2.  kvm_check_and_inject_events() re-injects
         * no NMI or interrupt while an exception is pending: the source
         * would deliver the exception, or exit to L1 if L1 intercepts
         * it, instead of L1's event.  The destination can only re-enter
         * with L1's event first (RUN_PENDING), so nothing can carry it.
         */
        problem(ck, "%s.exception.pending=1: exception %u is pending beside "
                "L1's injected %s, which KVM would drop for it (or return "
                "to L1); a restore would deliver L1's event first", p,
                ex->vector, nested_event_type_name(lv->injected.type));
    }
}

static void check_nmi(Checker *ck, const char *p, const NestedEventLevel *lv)
{
    bool nmi_busy = lv->nmi_masked ||
                    (lv->injected.valid &&
                     lv->injected.type == NESTED_EVENT_NMI);

    if (lv->nmi_pending > NESTED_MAX_PENDING_NMI) {
        problem(ck, "%s.nmi_pending=%u: KVM holds at most %u pending NMIs",
                p, lv->nmi_pending, NESTED_MAX_PENDING_NMI);
    } else if (nmi_busy && lv->nmi_pending > 1) {
        problem(ck, "%s.nmi_pending=%u: KVM holds at most 1 pending NMI "
                "while NMIs are masked or an NMI is being injected", p,
                lv->nmi_pending);
    }
}

static void check_level(Checker *ck, const NestedEventState *st,
                        const char *p, const NestedEventLevel *lv)
{
    check_injected(ck, st, p, &lv->injected);
    check_pending_exception(ck, p, lv);
    check_nmi(ck, p, lv);
    if (lv->interrupt_shadow & ~NESTED_SHADOW_ALL) {
        problem(ck, "%s.interrupt_shadow=0x%x: reserved bits 0x%x", p,
                lv->interrupt_shadow,
                lv->interrupt_shadow & ~NESTED_SHADOW_ALL);
    }
}

static void check_global(Checker *ck, const NestedEventState *st)
{
    if (st->vendor > NESTED_VENDOR_VMX) {
        problem(ck, "vendor=%u: reserved vendor", st->vendor);
    }
    if (st->guest_mode && st->vendor == NESTED_VENDOR_NONE) {
        problem(ck, "guest_mode=1: no nested vendor (SVM or VMX)");
    }
    if (st->nested_run_pending && !st->guest_mode) {
        problem(ck, "nested_run_pending=1: not in guest mode");
    }
    if (!st->gif && st->vendor != NESTED_VENDOR_SVM) {
        problem(ck, "gif=0: only SVM has a global interrupt flag");
    }
    /* Both svm_ and vmx_set_nested_state() refuse guest mode in SMM. */
    if (st->smi.smm && st->guest_mode) {
        problem(ck, "smi.smm=1: SMM while in guest mode");
    }
    if (st->smi.smm_inside_nmi && !st->smi.smm) {
        problem(ck, "smi.smm_inside_nmi=1: not in SMM");
    }
    if (!st->sipi_vector_valid && st->sipi_vector) {
        problem(ck, "sipi_vector=%u: set without sipi_vector_valid",
                st->sipi_vector);
    }
    if (st->sipi_vector > 0xff) {
        problem(ck, "sipi_vector=%u: SIPI vectors are 8 bits",
                st->sipi_vector);
    }
}

GPtrArray *nested_event_check(const NestedEventState *st)
{
    Checker ck = { .problems = g_ptr_array_new_with_free_func(g_free) };

    check_global(&ck, st);
    if (st->guest_mode && !level_is_idle(&st->l1)) {
        problem(&ck, "l1=busy: L1 events while L2 runs; KVM keeps one "
                "event queue, and it belongs to L2 in guest mode");
    }
    if (!st->guest_mode && !level_is_idle(&st->l2)) {
        problem(&ck, "l2=busy: L2 events while not in guest mode");
    }
    check_level(&ck, st, "l1", &st->l1);
    check_level(&ck, st, "l2", &st->l2);
    return ck.problems;
}

bool nested_event_validate_received(const NestedEventState *st,
                                    bool base_guest_mode, GError **errp)
{
    if (!nested_event_validate(st, errp)) {
        return false;
    }
    if (st->guest_mode != base_guest_mode) {
        g_set_error(errp, NESTED_EVENT_ERROR, NESTED_EVENT_ERROR_INCONSISTENT,
                    "guest_mode=%u: the CPU state in the same stream is %s "
                    "guest mode", st->guest_mode,
                    base_guest_mode ? "in" : "not in");
        return false;
    }
    if (!nested_event_beyond_stock(st)) {
        g_set_error(errp, NESTED_EVENT_ERROR, NESTED_EVENT_ERROR_INCONSISTENT,
                    "l1/l2.injected, l1/l2.interrupt_shadow: nothing in "
                    "flight that stock QEMU cannot carry (no L1-origin or "
                    "soft event, no shadow), so no sender sends this");
        return false;
    }
    return true;
}

bool nested_event_validate(const NestedEventState *st, GError **errp)
{
    g_autoptr(GPtrArray) problems = nested_event_check(st);

    if (problems->len == 0) {
        return true;
    }
    g_set_error(errp, NESTED_EVENT_ERROR, NESTED_EVENT_ERROR_INCONSISTENT,
                "%s", (const char *)g_ptr_array_index(problems, 0));
    return false;
}
