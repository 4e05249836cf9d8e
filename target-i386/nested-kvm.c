/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * Codecs for KVM's struct kvm_vcpu_events and struct kvm_nested_state,
 * and import of both into the event model.  Every input is untrusted:
 * lengths and offsets are checked before any read.
 */

#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include "nested-events.h"

G_STATIC_ASSERT(sizeof(struct kvm_vcpu_events) == 64);
G_STATIC_ASSERT(offsetof(struct kvm_vcpu_events, exception_payload) == 56);
G_STATIC_ASSERT(sizeof(struct kvm_nested_state) == NESTED_STATE_HDR_SIZE);
G_STATIC_ASSERT(offsetof(struct kvm_nested_state, data) ==
                NESTED_STATE_HDR_SIZE);
G_STATIC_ASSERT(offsetof(struct kvm_nested_state, hdr) == 8);
G_STATIC_ASSERT(sizeof(struct kvm_vmx_nested_state_hdr) == 32);

/* Byte offsets of the header fields inside the blob. */
#define NS_FLAGS 0u
#define NS_FORMAT 2u
#define NS_SIZE 4u
#define NS_HDR 8u
#define NS_HDR_LEN 120u
#define NS_SVM_VMCB_PA (NS_HDR + 0u)
#define NS_SVM_HDR_USED 8u
#define NS_VMX_VMXON_PA (NS_HDR + 0u)
#define NS_VMX_VMCS12_PA (NS_HDR + 8u)
#define NS_VMX_SMM_FLAGS (NS_HDR + 16u)
#define NS_VMX_PAD (NS_HDR + 18u)
#define NS_VMX_FLAGS (NS_HDR + 20u)
#define NS_VMX_DEADLINE (NS_HDR + 24u)
#define NS_VMX_HDR_USED 32u
#define NS_DATA NESTED_STATE_HDR_SIZE
#define NS_SHADOW (NS_DATA + NESTED_STATE_VMCS_SIZE)

#define PAGE_MASK_4K 0xfffu

/* ------------------------------------------------------------------ */
/* Little-endian access                                               */
/* ------------------------------------------------------------------ */

static uint16_t ld16(const uint8_t *p)
{
    uint16_t v;

    memcpy(&v, p, sizeof(v));
    return GUINT16_FROM_LE(v);
}

static uint32_t ld32(const uint8_t *p)
{
    uint32_t v;

    memcpy(&v, p, sizeof(v));
    return GUINT32_FROM_LE(v);
}

static uint64_t ld64(const uint8_t *p)
{
    uint64_t v;

    memcpy(&v, p, sizeof(v));
    return GUINT64_FROM_LE(v);
}

static void st16(uint8_t *p, uint16_t v)
{
    v = GUINT16_TO_LE(v);
    memcpy(p, &v, sizeof(v));
}

static void st32(uint8_t *p, uint32_t v)
{
    v = GUINT32_TO_LE(v);
    memcpy(p, &v, sizeof(v));
}

static void st64(uint8_t *p, uint64_t v)
{
    v = GUINT64_TO_LE(v);
    memcpy(p, &v, sizeof(v));
}

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

bool nested_kvm_vcpu_events_decode(const uint8_t *data, size_t len,
                                   struct kvm_vcpu_events *out,
                                   GError **errp)
{
    memset(out, 0, sizeof(*out));
    if (len < sizeof(*out)) {
        g_set_error(errp, NESTED_EVENT_ERROR, NESTED_EVENT_ERROR_TRUNCATED,
                    "kvm_vcpu_events.size=%zu: expected %zu", len,
                    sizeof(*out));
        return false;
    }
    if (len > sizeof(*out)) {
        g_set_error(errp, NESTED_EVENT_ERROR, NESTED_EVENT_ERROR_OVERSIZED,
                    "kvm_vcpu_events.size=%zu: expected %zu", len,
                    sizeof(*out));
        return false;
    }
    /* Host layout: the uAPI struct is the wire format KVM itself uses. */
    memcpy(out, data, sizeof(*out));
    return check_vcpu_event_reserved(out, errp) &&
           check_vcpu_event_bools(out, errp) &&
           check_vcpu_event_exception(out, errp);
}

bool nested_kvm_vcpu_events_encode(const struct kvm_vcpu_events *in,
                                   uint8_t *data, size_t len, GError **errp)
{
    struct kvm_vcpu_events copy = *in;

    if (len != sizeof(*in)) {
        g_set_error(errp, NESTED_EVENT_ERROR,
                    len < sizeof(*in) ? NESTED_EVENT_ERROR_TRUNCATED
                                      : NESTED_EVENT_ERROR_OVERSIZED,
                    "kvm_vcpu_events.size=%zu: expected %zu", len,
                    sizeof(*in));
        return false;
    }
    if (!check_vcpu_event_reserved(&copy, errp) ||
        !check_vcpu_event_bools(&copy, errp) ||
        !check_vcpu_event_exception(&copy, errp)) {
        return false;
    }
    memcpy(data, in, sizeof(*in));
    return true;
}

void nested_kvm_vcpu_events_canonicalize(struct kvm_vcpu_events *ev)
{
    if (!ev->exception.injected && !ev->exception.pending) {
        ev->exception.nr = 0;
        ev->exception.has_error_code = 0;
        ev->exception.error_code = 0;
    }
    if (!ev->exception.has_error_code) {
        ev->exception.error_code = 0;
    }
    if (!ev->exception_has_payload) {
        ev->exception_payload = 0;
    }
    if (!ev->interrupt.injected) {
        ev->interrupt.nr = 0;
        ev->interrupt.soft = 0;
    }
    if (!(ev->flags & KVM_VCPUEVENT_VALID_NMI_PENDING)) {
        ev->nmi.pending = 0;
    }
    if (!(ev->flags & KVM_VCPUEVENT_VALID_SIPI_VECTOR)) {
        ev->sipi_vector = 0;
    }
    if (!(ev->flags & KVM_VCPUEVENT_VALID_SHADOW)) {
        ev->interrupt.shadow = 0;
    }
    if (!(ev->flags & KVM_VCPUEVENT_VALID_SMM)) {
        memset(&ev->smi, 0, sizeof(ev->smi));
    }
    if (!(ev->flags & KVM_VCPUEVENT_VALID_TRIPLE_FAULT)) {
        ev->triple_fault.pending = 0;
    }
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
/* struct kvm_nested_state                                            */
/* ------------------------------------------------------------------ */

static bool G_GNUC_PRINTF(3, 4) ns_fail(GError **errp, int code,
                                        const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    g_propagate_error(errp, g_error_new_valist(NESTED_EVENT_ERROR, code,
                                               fmt, ap));
    va_end(ap);
    return false;
}

static bool check_zero(const uint8_t *data, uint32_t from, uint32_t to,
                       const char *what, GError **errp)
{
    uint32_t i;

    for (i = from; i < to; i++) {
        if (data[i]) {
            return ns_fail(errp, NESTED_EVENT_ERROR_RESERVED,
                           "%s[%u]=0x%02x: must be 0", what, i - from,
                           data[i]);
        }
    }
    return true;
}

static bool page_aligned(uint64_t gpa)
{
    return (gpa & PAGE_MASK_4K) == 0;
}

static void read_svm_vmcb12(const uint8_t *data, NestedStateView *v)
{
    const uint8_t *c = data + NS_DATA;

    v->svm_int_ctl = ld32(c + NESTED_VMCB_INT_CTL);
    v->svm_int_state = ld32(c + NESTED_VMCB_INT_STATE);
    v->svm_exit_int_info = ld32(c + NESTED_VMCB_EXIT_INT_INFO);
    v->svm_exit_int_info_err = ld32(c + NESTED_VMCB_EXIT_INT_INFO_ERR);
    v->svm_event_inj = ld32(c + NESTED_VMCB_EVENT_INJ);
    v->svm_event_inj_err = ld32(c + NESTED_VMCB_EVENT_INJ_ERR);
    v->svm_next_rip = ld64(c + NESTED_VMCB_NEXT_RIP);
}

/* Rules of svm_set_nested_state(); sizes as svm_get_nested_state(). */
static bool decode_svm(const uint8_t *data, NestedStateView *v,
                       GError **errp)
{
    const uint16_t known = KVM_STATE_NESTED_GUEST_MODE |
                           KVM_STATE_NESTED_RUN_PENDING |
                           KVM_STATE_NESTED_GIF_SET;
    bool guest = v->flags & KVM_STATE_NESTED_GUEST_MODE;

    if (v->flags & ~known) {
        return ns_fail(errp, NESTED_EVENT_ERROR_INVALID,
                       "flags=0x%x: bits 0x%x not valid for SVM", v->flags,
                       v->flags & ~known);
    }
    if ((v->flags & KVM_STATE_NESTED_RUN_PENDING) && !guest) {
        return ns_fail(errp, NESTED_EVENT_ERROR_INVALID,
                       "flags=0x%x: RUN_PENDING without GUEST_MODE",
                       v->flags);
    }
    if (v->size != (guest ? NESTED_STATE_SVM_MAX : NESTED_STATE_HDR_SIZE)) {
        return ns_fail(errp, NESTED_EVENT_ERROR_INVALID,
                       "size=%u: SVM state is %u bytes %s guest mode",
                       v->size, guest ? NESTED_STATE_SVM_MAX :
                       NESTED_STATE_HDR_SIZE, guest ? "in" : "outside");
    }
    v->vmcb_pa = ld64(data + NS_SVM_VMCB_PA);
    if (!check_zero(data, NS_HDR + NS_SVM_HDR_USED, NS_HDR + NS_HDR_LEN,
                    "hdr.svm.pad", errp)) {
        return false;
    }
    if (!guest) {
        if (v->vmcb_pa) {
            return ns_fail(errp, NESTED_EVENT_ERROR_INVALID,
                           "hdr.svm.vmcb_pa=0x%" PRIx64 ": set outside "
                           "guest mode", v->vmcb_pa);
        }
        return true;
    }
    if (!page_aligned(v->vmcb_pa)) {
        return ns_fail(errp, NESTED_EVENT_ERROR_INVALID,
                       "hdr.svm.vmcb_pa=0x%" PRIx64 ": not page aligned",
                       v->vmcb_pa);
    }
    v->has_vmcs = true;
    read_svm_vmcb12(data, v);
    return true;
}

static void read_vmcs12(const uint8_t *data, NestedStateView *v)
{
    const uint8_t *c = data + NS_DATA;

    v->vmx_revision = ld32(c + NESTED_VMCS12_REVISION_ID);
    v->vmx_entry_intr_info = ld32(c + NESTED_VMCS12_ENTRY_INTR_INFO);
    v->vmx_entry_exception_error_code =
        ld32(c + NESTED_VMCS12_ENTRY_EXCEPTION_ERROR_CODE);
    v->vmx_entry_instruction_len =
        ld32(c + NESTED_VMCS12_ENTRY_INSTRUCTION_LEN);
    v->vmx_exit_intr_info = ld32(c + NESTED_VMCS12_EXIT_INTR_INFO);
    v->vmx_exit_intr_error_code =
        ld32(c + NESTED_VMCS12_EXIT_INTR_ERROR_CODE);
    v->vmx_idt_vectoring_info = ld32(c + NESTED_VMCS12_IDT_VECTORING_INFO);
    v->vmx_idt_vectoring_error_code =
        ld32(c + NESTED_VMCS12_IDT_VECTORING_ERROR_CODE);
    v->vmx_exit_instruction_len =
        ld32(c + NESTED_VMCS12_EXIT_INSTRUCTION_LEN);
    v->vmx_guest_interruptibility =
        ld32(c + NESTED_VMCS12_GUEST_INTERRUPTIBILITY);
}

static bool decode_vmx_header(const uint8_t *data, NestedStateView *v,
                              GError **errp)
{
    const uint16_t known = KVM_STATE_NESTED_GUEST_MODE |
                           KVM_STATE_NESTED_RUN_PENDING |
                           KVM_STATE_NESTED_EVMCS |
                           KVM_STATE_NESTED_MTF_PENDING;
    const uint16_t smm_known = KVM_STATE_NESTED_SMM_GUEST_MODE |
                               KVM_STATE_NESTED_SMM_VMXON;
    bool guest = v->flags & KVM_STATE_NESTED_GUEST_MODE;

    v->vmxon_pa = ld64(data + NS_VMX_VMXON_PA);
    v->vmcs12_pa = ld64(data + NS_VMX_VMCS12_PA);
    v->vmx_smm_flags = ld16(data + NS_VMX_SMM_FLAGS);
    v->vmx_flags = ld32(data + NS_VMX_FLAGS);
    v->vmx_preemption_timer_deadline = ld64(data + NS_VMX_DEADLINE);

    if (v->flags & ~known) {
        return ns_fail(errp, NESTED_EVENT_ERROR_INVALID,
                       "flags=0x%x: bits 0x%x not valid for VMX", v->flags,
                       v->flags & ~known);
    }
    if ((v->flags & (KVM_STATE_NESTED_RUN_PENDING |
                     KVM_STATE_NESTED_MTF_PENDING)) && !guest) {
        return ns_fail(errp, NESTED_EVENT_ERROR_INVALID,
                       "flags=0x%x: RUN_PENDING/MTF_PENDING without "
                       "GUEST_MODE", v->flags);
    }
    if (ld16(data + NS_VMX_PAD)) {
        return ns_fail(errp, NESTED_EVENT_ERROR_RESERVED,
                       "hdr.vmx.pad=0x%x: must be 0",
                       ld16(data + NS_VMX_PAD));
    }
    if (!check_zero(data, NS_HDR + NS_VMX_HDR_USED, NS_HDR + NS_HDR_LEN,
                    "hdr.vmx.reserved", errp)) {
        return false;
    }
    if (v->vmx_smm_flags & ~smm_known) {
        return ns_fail(errp, NESTED_EVENT_ERROR_INVALID,
                       "hdr.vmx.smm.flags=0x%x: unknown bits",
                       v->vmx_smm_flags);
    }
    if ((v->vmx_smm_flags & KVM_STATE_NESTED_SMM_GUEST_MODE) &&
        (guest || !(v->vmx_smm_flags & KVM_STATE_NESTED_SMM_VMXON))) {
        return ns_fail(errp, NESTED_EVENT_ERROR_INVALID,
                       "hdr.vmx.smm.flags=0x%x: SMM_GUEST_MODE needs "
                       "SMM_VMXON and excludes GUEST_MODE",
                       v->vmx_smm_flags);
    }
    if (v->vmx_flags & ~KVM_STATE_VMX_PREEMPTION_TIMER_DEADLINE) {
        return ns_fail(errp, NESTED_EVENT_ERROR_INVALID,
                       "hdr.vmx.flags=0x%x: unknown bits", v->vmx_flags);
    }
    return true;
}

static bool decode_vmx_outside_vmx(NestedStateView *v, GError **errp)
{
    if (v->vmx_smm_flags || v->vmcs12_pa != NESTED_STATE_INVALID_GPA ||
        (v->flags & ~KVM_STATE_NESTED_EVMCS) || v->vmx_flags) {
        return ns_fail(errp, NESTED_EVENT_ERROR_INVALID,
                       "hdr.vmx.vmxon_pa=-1: outside VMX operation only "
                       "flags=EVMCS is allowed (flags=0x%x, vmcs12_pa=0x%"
                       PRIx64 ", smm.flags=0x%x)", v->flags, v->vmcs12_pa,
                       v->vmx_smm_flags);
    }
    if (v->size != NESTED_STATE_HDR_SIZE) {
        return ns_fail(errp, NESTED_EVENT_ERROR_INVALID,
                       "size=%u: no vmcs12 outside VMX operation", v->size);
    }
    return true;
}

static bool decode_vmx_vmcs12(const uint8_t *data, NestedStateView *v,
                              GError **errp)
{
    bool guest = v->flags & KVM_STATE_NESTED_GUEST_MODE;

    if (v->size == NESTED_STATE_HDR_SIZE) {
        /* "Empty VMXON": vmx_set_nested_state() needs nothing loaded. */
        if (guest || (v->flags & KVM_STATE_NESTED_EVMCS) ||
            v->vmcs12_pa != NESTED_STATE_INVALID_GPA) {
            return ns_fail(errp, NESTED_EVENT_ERROR_INVALID,
                           "size=%u: flags=0x%x / vmcs12_pa=0x%" PRIx64
                           " need a vmcs12", v->size, v->flags,
                           v->vmcs12_pa);
        }
        return true;
    }
    if (v->size != NESTED_STATE_HDR_SIZE + NESTED_STATE_VMCS_SIZE &&
        v->size != NESTED_STATE_VMX_MAX) {
        return ns_fail(errp, NESTED_EVENT_ERROR_INVALID,
                       "size=%u: VMX state is %u, %u or %u bytes", v->size,
                       NESTED_STATE_HDR_SIZE,
                       NESTED_STATE_HDR_SIZE + NESTED_STATE_VMCS_SIZE,
                       NESTED_STATE_VMX_MAX);
    }
    if (v->vmcs12_pa == NESTED_STATE_INVALID_GPA) {
        if (!(v->flags & KVM_STATE_NESTED_EVMCS)) {
            return ns_fail(errp, NESTED_EVENT_ERROR_INVALID,
                           "hdr.vmx.vmcs12_pa=-1: vmcs12 data without a "
                           "current VMCS or eVMCS");
        }
    } else if (!page_aligned(v->vmcs12_pa) ||
               v->vmcs12_pa == v->vmxon_pa) {
        return ns_fail(errp, NESTED_EVENT_ERROR_INVALID,
                       "hdr.vmx.vmcs12_pa=0x%" PRIx64 ": not page aligned "
                       "or equal to vmxon_pa", v->vmcs12_pa);
    }
    v->has_vmcs = true;
    read_vmcs12(data, v);
    if ((v->vmx_revision & ~NESTED_VMCS12_SHADOW_BIT) !=
        NESTED_VMCS12_REVISION) {
        return ns_fail(errp, NESTED_EVENT_ERROR_INVALID,
                       "vmcs12.revision_id=0x%08x: expected 0x%08x",
                       v->vmx_revision, NESTED_VMCS12_REVISION);
    }
    if (v->size == NESTED_STATE_VMX_MAX) {
        v->has_shadow_vmcs = true;
        v->vmx_shadow_revision = ld32(data + NS_SHADOW);
        if (v->vmx_shadow_revision !=
            (NESTED_VMCS12_REVISION | NESTED_VMCS12_SHADOW_BIT)) {
            return ns_fail(errp, NESTED_EVENT_ERROR_INVALID,
                           "shadow_vmcs12.revision_id=0x%08x: expected "
                           "0x%08x with the shadow bit",
                           v->vmx_shadow_revision,
                           NESTED_VMCS12_REVISION | NESTED_VMCS12_SHADOW_BIT);
        }
    }
    return true;
}

static bool decode_vmx(const uint8_t *data, NestedStateView *v,
                       GError **errp)
{
    if (!decode_vmx_header(data, v, errp)) {
        return false;
    }
    if (v->vmxon_pa == NESTED_STATE_INVALID_GPA) {
        return decode_vmx_outside_vmx(v, errp);
    }
    if (!page_aligned(v->vmxon_pa)) {
        return ns_fail(errp, NESTED_EVENT_ERROR_INVALID,
                       "hdr.vmx.vmxon_pa=0x%" PRIx64 ": not page aligned",
                       v->vmxon_pa);
    }
    return decode_vmx_vmcs12(data, v, errp);
}

bool nested_kvm_nested_state_decode(const uint8_t *data, size_t len,
                                    NestedStateView *out, GError **errp)
{
    size_t max;

    memset(out, 0, sizeof(*out));
    if (len < NESTED_STATE_HDR_SIZE) {
        return ns_fail(errp, NESTED_EVENT_ERROR_TRUNCATED,
                       "kvm_nested_state.len=%zu: header is %u bytes", len,
                       NESTED_STATE_HDR_SIZE);
    }
    out->flags = ld16(data + NS_FLAGS);
    out->format = ld16(data + NS_FORMAT);
    out->size = ld32(data + NS_SIZE);
    if (out->format == KVM_STATE_NESTED_FORMAT_SVM) {
        max = NESTED_STATE_SVM_MAX;
    } else if (out->format == KVM_STATE_NESTED_FORMAT_VMX) {
        max = NESTED_STATE_VMX_MAX;
    } else {
        return ns_fail(errp, NESTED_EVENT_ERROR_INVALID,
                       "format=%u: neither VMX (0) nor SVM (1)",
                       out->format);
    }
    if (out->size < NESTED_STATE_HDR_SIZE) {
        return ns_fail(errp, NESTED_EVENT_ERROR_INVALID,
                       "size=%u: smaller than the %u-byte header", out->size,
                       NESTED_STATE_HDR_SIZE);
    }
    if (out->size > max || len > max) {
        return ns_fail(errp, NESTED_EVENT_ERROR_OVERSIZED,
                       "size=%u (buffer %zu): more than the %zu bytes of "
                       "format %u", out->size, len, max, out->format);
    }
    if (out->size > len) {
        return ns_fail(errp, NESTED_EVENT_ERROR_TRUNCATED,
                       "size=%u: only %zu bytes present", out->size, len);
    }
    if (out->format == KVM_STATE_NESTED_FORMAT_SVM) {
        return decode_svm(data, out, errp);
    }
    return decode_vmx(data, out, errp);
}

static void write_svm(const NestedStateView *v, uint8_t *data)
{
    uint8_t *c = data + NS_DATA;

    st64(data + NS_SVM_VMCB_PA, v->vmcb_pa);
    if (!v->has_vmcs) {
        return;
    }
    st32(c + NESTED_VMCB_INT_CTL, v->svm_int_ctl);
    st32(c + NESTED_VMCB_INT_STATE, v->svm_int_state);
    st32(c + NESTED_VMCB_EXIT_INT_INFO, v->svm_exit_int_info);
    st32(c + NESTED_VMCB_EXIT_INT_INFO_ERR, v->svm_exit_int_info_err);
    st32(c + NESTED_VMCB_EVENT_INJ, v->svm_event_inj);
    st32(c + NESTED_VMCB_EVENT_INJ_ERR, v->svm_event_inj_err);
    st64(c + NESTED_VMCB_NEXT_RIP, v->svm_next_rip);
}

static void write_vmx(const NestedStateView *v, uint8_t *data)
{
    uint8_t *c = data + NS_DATA;

    st64(data + NS_VMX_VMXON_PA, v->vmxon_pa);
    st64(data + NS_VMX_VMCS12_PA, v->vmcs12_pa);
    st16(data + NS_VMX_SMM_FLAGS, v->vmx_smm_flags);
    st32(data + NS_VMX_FLAGS, v->vmx_flags);
    st64(data + NS_VMX_DEADLINE, v->vmx_preemption_timer_deadline);
    if (v->has_shadow_vmcs) {
        st32(data + NS_SHADOW, v->vmx_shadow_revision);
    }
    if (!v->has_vmcs) {
        return;
    }
    st32(c + NESTED_VMCS12_REVISION_ID, v->vmx_revision);
    st32(c + NESTED_VMCS12_ENTRY_INTR_INFO, v->vmx_entry_intr_info);
    st32(c + NESTED_VMCS12_ENTRY_EXCEPTION_ERROR_CODE,
         v->vmx_entry_exception_error_code);
    st32(c + NESTED_VMCS12_ENTRY_INSTRUCTION_LEN,
         v->vmx_entry_instruction_len);
    st32(c + NESTED_VMCS12_EXIT_INTR_INFO, v->vmx_exit_intr_info);
    st32(c + NESTED_VMCS12_EXIT_INTR_ERROR_CODE, v->vmx_exit_intr_error_code);
    st32(c + NESTED_VMCS12_IDT_VECTORING_INFO, v->vmx_idt_vectoring_info);
    st32(c + NESTED_VMCS12_IDT_VECTORING_ERROR_CODE,
         v->vmx_idt_vectoring_error_code);
    st32(c + NESTED_VMCS12_EXIT_INSTRUCTION_LEN, v->vmx_exit_instruction_len);
    st32(c + NESTED_VMCS12_GUEST_INTERRUPTIBILITY,
         v->vmx_guest_interruptibility);
}

bool nested_kvm_nested_state_encode(const NestedStateView *in,
                                    uint8_t *data, size_t len, GError **errp)
{
    g_autofree uint8_t *tmp = NULL;
    NestedStateView check;

    if (in->size < NESTED_STATE_HDR_SIZE || in->size > NESTED_STATE_VMX_MAX) {
        return ns_fail(errp, NESTED_EVENT_ERROR_INVALID,
                       "size=%u: not a kvm_nested_state size", in->size);
    }
    if (len < in->size) {
        return ns_fail(errp, NESTED_EVENT_ERROR_TRUNCATED,
                       "size=%u: buffer has %zu bytes", in->size, len);
    }
    tmp = g_malloc0(in->size);
    st16(tmp + NS_FLAGS, in->flags);
    st16(tmp + NS_FORMAT, in->format);
    st32(tmp + NS_SIZE, in->size);
    if (in->format == KVM_STATE_NESTED_FORMAT_SVM) {
        write_svm(in, tmp);
    } else {
        write_vmx(in, tmp);
    }
    /* Refuse to produce a blob our own decoder (and KVM) would reject. */
    if (!nested_kvm_nested_state_decode(tmp, in->size, &check, errp)) {
        return false;
    }
    memcpy(data, tmp, in->size);
    return true;
}

/* ------------------------------------------------------------------ */
/* Import into the model                                              */
/* ------------------------------------------------------------------ */

/*
 * SVM: L1 chose NextRIP freely (see nested-events.c), so a return
 * address far from RIP is kept as it is, with no instruction length.
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
        ev.old_rip = rip;
        ev.next_rip = rip + ev.insn_len;
        ev.cs_base = cs_base;
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

bool nested_kvm_nested_state_apply(uint8_t *data, size_t len,
                                   const NestedStateEdit *edits, size_t n,
                                   GError **errp)
{
    size_t i;

    for (i = 0; i < n; i++) {
        const NestedStateEdit *e = &edits[i];
        uint8_t *p = data + e->offset;
        uint64_t old;

        if (e->width != 2 && e->width != 4 && e->width != 8) {
            return ns_fail(errp, NESTED_EVENT_ERROR_INVALID,
                           "%s.width=%u: must be 2, 4 or 8", e->field,
                           e->width);
        }
        if (e->offset > len || len - e->offset < e->width) {
            return ns_fail(errp, NESTED_EVENT_ERROR_TRUNCATED,
                           "%s.offset=%u: outside the %zu-byte blob",
                           e->field, e->offset, len);
        }
        switch (e->width) {
        case 2:
            old = ld16(p);
            st16(p, (old & ~e->mask) | (e->value & e->mask));
            break;
        case 4:
            old = ld32(p);
            st32(p, (old & ~e->mask) | (e->value & e->mask));
            break;
        default:
            old = ld64(p);
            st64(p, (old & ~e->mask) | (e->value & e->mask));
            break;
        }
    }
    return true;
}
