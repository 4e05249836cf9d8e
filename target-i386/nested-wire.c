/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * The compact form of the event model in cpu/nested-events (see
 * nested-wire.h): what goes on the wire, and the rebuild of the whole
 * model from it and from stock QEMU's fields of the same stream.
 */

#include <inttypes.h>
#include <string.h>

#include "nested-state.h"
#include "nested-wire.h"

size_t nested_event_wire_size(const NestedEventWire *w)
{
    size_t size = NESTED_WIRE_MIN_SIZE;

    if (w->flags & NESTED_WIRE_EVENT) {
        size += 2;
        if (w->event & NESTED_WIRE_EVENT_ERROR_CODE) {
            size += 4;
        }
    }
    if (w->flags & NESTED_WIRE_EXCEPTION) {
        size += 2;
        if (w->exc_info & NESTED_WIRE_EXC_ERROR_CODE) {
            size += 4;
        }
        if (w->exc_info & NESTED_WIRE_EXC_PAYLOAD) {
            size += 8;
        }
    }
    return size;
}

static const char *state_diff(const NestedEventState *a,
                              const NestedEventState *b);

/* ------------------------------------------------------------------ */
/* Sender                                                             */
/* ------------------------------------------------------------------ */

static void encode_event(const NestedEvent *ev, NestedEventWire *w)
{
    if (!ev->valid) {
        return;
    }
    w->flags |= NESTED_WIRE_EVENT;
    w->event = ev->type & NESTED_WIRE_EVENT_TYPE;
    if (ev->origin == NESTED_ORIGIN_L1) {
        w->event |= NESTED_WIRE_EVENT_L1;
    }
    if (ev->has_error_code) {
        w->event |= NESTED_WIRE_EVENT_ERROR_CODE;
        w->error_code = ev->error_code;
    }
    w->vector = ev->vector;
}

static void encode_exception(const NestedPendingException *ex,
                             NestedEventWire *w)
{
    if (!ex->pending) {
        return;
    }
    w->flags |= NESTED_WIRE_EXCEPTION;
    w->exc_vector = ex->vector;
    if (ex->has_error_code) {
        w->exc_info |= NESTED_WIRE_EXC_ERROR_CODE;
        w->exc_error_code = ex->error_code;
    }
    if (ex->has_payload) {
        w->exc_info |= NESTED_WIRE_EXC_PAYLOAD;
        w->exc_payload = ex->payload;
    }
}

/*
 * The round trip is the contract: whatever the rebuild would take from
 * stock differently from the model (the other level busy, a soft event
 * whose RIPs moved, a stock field out of step) fails the save here, on
 * the source that can still run on, and never reaches a destination.
 */
bool nested_event_wire_encode(const NestedEventState *st,
                              const NestedStockView *stock,
                              NestedEventWire *w, GError **errp)
{
    const NestedEventLevel *lv = nested_event_current_level(st);
    g_autoptr(GError) err = NULL;
    NestedEventState back;
    const char *diff;

    memset(w, 0, sizeof(*w));
    encode_event(&lv->injected, w);
    encode_exception(&lv->exception, w);
    w->shadow = lv->interrupt_shadow;
    if (st->triple_fault_pending) {
        w->flags |= NESTED_WIRE_TRIPLE_FAULT;
    }
    if (st->smi.pending) {
        w->flags |= NESTED_WIRE_SMI_PENDING;
    }
    if (st->smi.latched_init) {
        w->flags |= NESTED_WIRE_SMI_LATCHED_INIT;
    }
    if (!nested_event_wire_decode(w, stock, &back, &err)) {
        return nested_event_fail(errp, NESTED_EVENT_ERROR_UNREPRESENTABLE,
                                 "%s (compact form of this vCPU's model)",
                                 err->message);
    }
    diff = state_diff(st, &back);
    if (diff) {
        return nested_event_fail(errp, NESTED_EVENT_ERROR_UNREPRESENTABLE,
                                 "%s: the stream's CPU state would rebuild "
                                 "it differently from the model", diff);
    }
    return true;
}

/* ------------------------------------------------------------------ */
/* Receiver                                                           */
/* ------------------------------------------------------------------ */

/* Fields without their flag never come off the wire; a caller's might. */
static bool check_absent(const NestedEventWire *w, GError **errp)
{
    if (!(w->flags & NESTED_WIRE_EVENT) && (w->event || w->vector)) {
        return nested_event_fail(errp, NESTED_EVENT_ERROR_INVALID,
                                 "event=0x%02x: set without flags.event",
                                 w->event);
    }
    if (!(w->event & NESTED_WIRE_EVENT_ERROR_CODE) && w->error_code) {
        return nested_event_fail(errp, NESTED_EVENT_ERROR_INVALID,
                                 "error_code=0x%x: set without "
                                 "event.error_code", w->error_code);
    }
    if (!(w->flags & NESTED_WIRE_EXCEPTION) && (w->exc_vector ||
                                                w->exc_info)) {
        return nested_event_fail(errp, NESTED_EVENT_ERROR_INVALID,
                                 "exc_vector=%u: set without "
                                 "flags.exception", w->exc_vector);
    }
    if (!(w->exc_info & NESTED_WIRE_EXC_ERROR_CODE) && w->exc_error_code) {
        return nested_event_fail(errp, NESTED_EVENT_ERROR_INVALID,
                                 "exc_error_code=0x%x: set without "
                                 "exc_info.error_code", w->exc_error_code);
    }
    if (!(w->exc_info & NESTED_WIRE_EXC_PAYLOAD) && w->exc_payload) {
        return nested_event_fail(errp, NESTED_EVENT_ERROR_INVALID,
                                 "exc_payload=0x%" PRIx64 ": set without "
                                 "exc_info.payload", w->exc_payload);
    }
    return true;
}

static bool check_reserved(const NestedEventWire *w, GError **errp)
{
    if (w->flags & ~NESTED_WIRE_FLAGS_ALL) {
        return nested_event_fail(errp, NESTED_EVENT_ERROR_RESERVED,
                                 "flags=0x%02x: unknown bits 0x%02x",
                                 w->flags, w->flags & ~NESTED_WIRE_FLAGS_ALL);
    }
    if (w->event & ~NESTED_WIRE_EVENT_ALL) {
        return nested_event_fail(errp, NESTED_EVENT_ERROR_RESERVED,
                                 "event=0x%02x: unknown bits 0x%02x",
                                 w->event, w->event & ~NESTED_WIRE_EVENT_ALL);
    }
    if (w->exc_info & ~NESTED_WIRE_EXC_ALL) {
        return nested_event_fail(errp, NESTED_EVENT_ERROR_RESERVED,
                                 "exc_info=0x%02x: unknown bits 0x%02x",
                                 w->exc_info,
                                 w->exc_info & ~NESTED_WIRE_EXC_ALL);
    }
    return check_absent(w, errp);
}

/*
 * A soft event of L1's restarts from L2's RIP and CS base, which stock
 * carries; its return address is L1's request, which the nested state
 * keeps: vmcb12 NextRIP on SVM, the VM-entry instruction length on VMX.
 */
static bool rebuild_soft_rips(NestedEvent *ev, const char *p,
                              const NestedStockView *stock, GError **errp)
{
    g_autoptr(GError) err = NULL;
    NestedStateView view;

    if (ev->origin != NESTED_ORIGIN_L1) {
        return nested_event_fail(errp, NESTED_EVENT_ERROR_INVALID,
                                 "%s.injected.origin=L0: a soft event of "
                                 "L0's is never sent (KVM re-executes the "
                                 "instruction)", p);
    }
    if (!stock->nested_state) {
        return nested_event_fail(errp, NESTED_EVENT_ERROR_INVALID,
                                 "%s.injected.type=%s: no nested state in "
                                 "the stream holds its return address", p,
                                 nested_event_type_name(ev->type));
    }
    if (!nested_state_decode(stock->nested_state, stock->nested_state_len,
                             &view, &err)) {
        return nested_event_fail(errp, NESTED_EVENT_ERROR_INVALID,
                                 "kvm_nested_state: %s", err->message);
    }
    if (!view.has_vmcs) {
        return nested_event_fail(errp, NESTED_EVENT_ERROR_INVALID,
                                 "%s.injected.type=%s: the stream's nested "
                                 "state has no vmcb12/vmcs12", p,
                                 nested_event_type_name(ev->type));
    }
    if (stock->vendor == NESTED_VENDOR_SVM) {
        nested_event_set_svm_soft_rips(ev, stock->rip, stock->cs_base,
                                       view.svm_next_rip);
        return true;
    }
    if (view.vmx_entry_instruction_len > NESTED_MAX_INSN_LEN) {
        return nested_event_fail(errp, NESTED_EVENT_ERROR_INVALID,
                                 "vmcs12.vm_entry_instruction_len=%u: "
                                 "longer than 15 bytes",
                                 view.vmx_entry_instruction_len);
    }
    ev->insn_len = view.vmx_entry_instruction_len;
    nested_event_set_vmx_soft_rips(ev, stock->rip, stock->cs_base);
    return true;
}

static bool decode_level(const NestedEventWire *w,
                         const NestedStockView *stock, const char *p,
                         NestedEventLevel *lv, GError **errp)
{
    NestedEvent *ev = &lv->injected;
    NestedPendingException *ex = &lv->exception;

    lv->interrupt_shadow = w->shadow;
    lv->nmi_pending = stock->nmi_pending;
    lv->nmi_masked = stock->nmi_masked;
    if (w->flags & NESTED_WIRE_EXCEPTION) {
        ex->pending = true;
        ex->vector = w->exc_vector;
        ex->has_error_code = w->exc_info & NESTED_WIRE_EXC_ERROR_CODE;
        ex->error_code = w->exc_error_code;
        ex->has_payload = w->exc_info & NESTED_WIRE_EXC_PAYLOAD;
        ex->payload = w->exc_payload;
    }
    if (!(w->flags & NESTED_WIRE_EVENT)) {
        return true;
    }
    ev->valid = true;
    ev->type = w->event & NESTED_WIRE_EVENT_TYPE;
    ev->vector = w->vector;
    ev->origin = w->event & NESTED_WIRE_EVENT_L1 ? NESTED_ORIGIN_L1
                                                  : NESTED_ORIGIN_L0;
    ev->has_error_code = w->event & NESTED_WIRE_EVENT_ERROR_CODE;
    ev->error_code = w->error_code;
    if (nested_event_type_is_soft(ev->type)) {
        return rebuild_soft_rips(ev, p, stock, errp);
    }
    return true;
}

/* Only a pending nested run survives in the flags that matter here. */
static bool stock_run_pending(const NestedStockView *stock)
{
    uint16_t flags;

    if (!stock->guest_mode || !stock->nested_state ||
        stock->nested_state_len < 2) {
        return false;
    }
    flags = stock->nested_state[0] | stock->nested_state[1] << 8;
    return flags & KVM_STATE_NESTED_RUN_PENDING;
}

bool nested_event_wire_decode(const NestedEventWire *w,
                              const NestedStockView *stock,
                              NestedEventState *st, GError **errp)
{
    NestedVendor vendor = stock->vendor;

    nested_event_state_init(st, vendor);
    if (!check_reserved(w, errp)) {
        return false;
    }
    st->guest_mode = stock->guest_mode;
    st->nested_run_pending = stock_run_pending(stock);
    /* VMX has no GIF; the model keeps it set there, as import does. */
    st->gif = vendor == NESTED_VENDOR_SVM ? stock->gif : true;
    st->triple_fault_pending = w->flags & NESTED_WIRE_TRIPLE_FAULT;
    st->smi.smm = stock->smm;
    st->smi.smm_inside_nmi = stock->smm_inside_nmi;
    st->smi.pending = w->flags & NESTED_WIRE_SMI_PENDING;
    st->smi.latched_init = w->flags & NESTED_WIRE_SMI_LATCHED_INIT;
    if (st->guest_mode) {
        return decode_level(w, stock, "l2", &st->l2, errp);
    }
    return decode_level(w, stock, "l1", &st->l1, errp);
}

/* ------------------------------------------------------------------ */
/* Comparing models                                                   */
/* ------------------------------------------------------------------ */

#define DIFF(a, b, f, name) \
    do { \
        if ((a)->f != (b)->f) { \
            return name; \
        } \
    } while (0)

/* A field of a level's part, named with the level: "l2.injected.type" */
#define LEVEL_DIFF(a, b, l2, part, f) \
    DIFF(a, b, f, (l2) ? "l2." part #f : "l1." part #f)

static const char *event_diff(const NestedEvent *a, const NestedEvent *b,
                              bool l2)
{
    LEVEL_DIFF(a, b, l2, "injected.", valid);
    LEVEL_DIFF(a, b, l2, "injected.", type);
    LEVEL_DIFF(a, b, l2, "injected.", vector);
    LEVEL_DIFF(a, b, l2, "injected.", origin);
    LEVEL_DIFF(a, b, l2, "injected.", has_error_code);
    LEVEL_DIFF(a, b, l2, "injected.", error_code);
    LEVEL_DIFF(a, b, l2, "injected.", insn_len);
    LEVEL_DIFF(a, b, l2, "injected.", old_rip);
    LEVEL_DIFF(a, b, l2, "injected.", next_rip);
    LEVEL_DIFF(a, b, l2, "injected.", cs_base);
    return NULL;
}

static const char *exception_diff(const NestedPendingException *a,
                                  const NestedPendingException *b, bool l2)
{
    LEVEL_DIFF(a, b, l2, "exception.", pending);
    LEVEL_DIFF(a, b, l2, "exception.", vector);
    LEVEL_DIFF(a, b, l2, "exception.", has_error_code);
    LEVEL_DIFF(a, b, l2, "exception.", error_code);
    LEVEL_DIFF(a, b, l2, "exception.", has_payload);
    LEVEL_DIFF(a, b, l2, "exception.", payload);
    return NULL;
}

static const char *level_diff(const NestedEventLevel *a,
                              const NestedEventLevel *b, bool l2)
{
    const char *d = event_diff(&a->injected, &b->injected, l2);

    if (!d) {
        d = exception_diff(&a->exception, &b->exception, l2);
    }
    if (d) {
        return d;
    }
    LEVEL_DIFF(a, b, l2, "", nmi_pending);
    LEVEL_DIFF(a, b, l2, "", nmi_masked);
    LEVEL_DIFF(a, b, l2, "", interrupt_shadow);
    return NULL;
}

/* The first field path where a and b differ, or NULL when equal. */
static const char *state_diff(const NestedEventState *a,
                              const NestedEventState *b)
{
    const char *d;

    DIFF(a, b, vendor, "vendor");
    DIFF(a, b, guest_mode, "guest_mode");
    DIFF(a, b, nested_run_pending, "nested_run_pending");
    DIFF(a, b, gif, "gif");
    DIFF(a, b, triple_fault_pending, "triple_fault_pending");
    DIFF(a, b, sipi_vector_valid, "sipi_vector_valid");
    DIFF(a, b, sipi_vector, "sipi_vector");
    DIFF(a, b, smi.smm, "smi.smm");
    DIFF(a, b, smi.pending, "smi.pending");
    DIFF(a, b, smi.smm_inside_nmi, "smi.smm_inside_nmi");
    DIFF(a, b, smi.latched_init, "smi.latched_init");
    d = level_diff(&a->l1, &b->l1, false);
    return d ? d : level_diff(&a->l2, &b->l2, true);
}
