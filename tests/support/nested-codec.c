/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * Test support: byte codecs for struct kvm_vcpu_events and struct
 * kvm_nested_state (see nested-codec.h).
 */

#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include "nested-bytes.h"
#include "nested-codec.h"
#include "nested-events.h"
#include "nested-import.h"

/* ------------------------------------------------------------------ */
/* struct kvm_vcpu_events                                             */
/* ------------------------------------------------------------------ */

#define EV_U8(f) { #f, offsetof(struct kvm_vcpu_events, f) }

/* The uAPI's __u8 fields that mean yes or no. */
static const struct {
    const char *name;
    size_t offset;
} ev_flags_u8[] = {
    EV_U8(exception.injected),
    EV_U8(exception.has_error_code),
    EV_U8(exception.pending),
    EV_U8(interrupt.injected),
    EV_U8(interrupt.soft),
    EV_U8(nmi.injected),
    EV_U8(nmi.masked),
    EV_U8(smi.smm),
    EV_U8(smi.pending),
    EV_U8(smi.smm_inside_nmi),
    EV_U8(smi.latched_init),
    EV_U8(triple_fault.pending),
    EV_U8(exception_has_payload),
};

/*
 * The rules the product's import applies to a struct, written again
 * here rather than shared: the encoder is the fuzz targets' oracle for
 * the planner's output, so it must not be the code under test.
 */
static bool vcpu_events_check(const struct kvm_vcpu_events *ev,
                              GError **errp)
{
    const uint8_t *bytes = (const uint8_t *)ev;
    bool with_payload = ev->flags & KVM_VCPUEVENT_VALID_PAYLOAD;
    bool exception = ev->exception.injected || ev->exception.pending;
    size_t i;

    if (ev->flags & ~NESTED_VCPUEVENT_VALID_ALL) {
        return nested_event_fail(errp, NESTED_EVENT_ERROR_RESERVED,
                                 "flags=0x%x: unknown bits 0x%x", ev->flags,
                                 ev->flags & ~NESTED_VCPUEVENT_VALID_ALL);
    }
    if (ev->nmi.pad) {
        return nested_event_fail(errp, NESTED_EVENT_ERROR_RESERVED,
                                 "nmi.pad=%u: must be 0", ev->nmi.pad);
    }
    for (i = 0; i < sizeof(ev->reserved); i++) {
        if (ev->reserved[i]) {
            return nested_event_fail(errp, NESTED_EVENT_ERROR_RESERVED,
                                     "reserved[%zu]=%u: must be 0", i,
                                     ev->reserved[i]);
        }
    }
    if (ev->interrupt.shadow & ~NESTED_SHADOW_ALL) {
        return nested_event_fail(errp, NESTED_EVENT_ERROR_RESERVED,
                                 "interrupt.shadow=0x%x: unknown bits",
                                 ev->interrupt.shadow);
    }
    for (i = 0; i < G_N_ELEMENTS(ev_flags_u8); i++) {
        if (bytes[ev_flags_u8[i].offset] > 1) {
            return nested_event_fail(
                errp, NESTED_EVENT_ERROR_INVALID, "%s=%u: must be 0 or 1",
                ev_flags_u8[i].name, bytes[ev_flags_u8[i].offset]);
        }
    }
    if (ev->exception.injected && ev->exception.pending) {
        return nested_event_fail(
            errp, NESTED_EVENT_ERROR_INVALID,
            "exception.pending=1: exception also injected");
    }
    if (!with_payload &&
        (ev->exception.pending || ev->exception_has_payload)) {
        return nested_event_fail(
            errp, NESTED_EVENT_ERROR_INVALID,
            "exception.pending=%u: pending exceptions and payloads "
            "need KVM_VCPUEVENT_VALID_PAYLOAD",
            ev->exception.pending);
    }
    if (ev->exception_has_payload && !ev->exception.pending) {
        return nested_event_fail(
            errp, NESTED_EVENT_ERROR_INVALID,
            "exception_has_payload=1: only a pending exception "
            "carries a payload");
    }
    if (exception &&
        (ev->exception.nr > 31 || ev->exception.nr == NESTED_VECTOR_NMI)) {
        return nested_event_fail(errp, NESTED_EVENT_ERROR_INVALID,
                                 "exception.nr=%u: not an exception vector",
                                 ev->exception.nr);
    }
    return true;
}

static bool vcpu_events_length(size_t len, GError **errp)
{
    size_t want = sizeof(struct kvm_vcpu_events);

    if (len == want) {
        return true;
    }
    return nested_event_fail(errp,
                             len < want ? NESTED_EVENT_ERROR_TRUNCATED
                                        : NESTED_EVENT_ERROR_OVERSIZED,
                             "kvm_vcpu_events.size=%zu: expected %zu", len,
                             want);
}

bool nested_vcpu_events_decode(const uint8_t *data, size_t len,
                               struct kvm_vcpu_events *out, GError **errp)
{
    memset(out, 0, sizeof(*out));
    if (!vcpu_events_length(len, errp)) {
        return false;
    }
    /* Host layout: the uAPI struct is the wire format KVM itself uses. */
    memcpy(out, data, sizeof(*out));
    return vcpu_events_check(out, errp);
}

bool nested_vcpu_events_encode(const struct kvm_vcpu_events *in,
                               uint8_t *data, size_t len, GError **errp)
{
    if (!vcpu_events_length(len, errp) || !vcpu_events_check(in, errp)) {
        return false;
    }
    memcpy(data, in, sizeof(*in));
    return true;
}

void nested_vcpu_events_canonicalize(struct kvm_vcpu_events *ev)
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

/* ------------------------------------------------------------------ */
/* struct kvm_nested_state                                            */
/* ------------------------------------------------------------------ */

/* Offsets from the uAPI headers, not from the decoder under test. */
#define NS_OFF(f) offsetof(struct kvm_nested_state, f)
#define NS_SVM(f) (NS_OFF(hdr) + offsetof(struct kvm_svm_nested_state_hdr, f))
#define NS_VMX(f) (NS_OFF(hdr) + offsetof(struct kvm_vmx_nested_state_hdr, f))
#define NS_VMCS12 NESTED_STATE_HDR_SIZE
#define NS_SHADOW_VMCS12 (NS_VMCS12 + NESTED_STATE_VMCS_SIZE)

static void write_svm(const NestedStateView *v, uint8_t *data)
{
    uint8_t *c = data + NS_VMCS12;

    nested_st64(data + NS_SVM(vmcb_pa), v->vmcb_pa);
    if (!v->has_vmcs) {
        return;
    }
    nested_st32(c + NESTED_VMCB_INT_CTL, v->svm_int_ctl);
    nested_st32(c + NESTED_VMCB_INT_STATE, v->svm_int_state);
    nested_st32(c + NESTED_VMCB_EXIT_INT_INFO, v->svm_exit_int_info);
    nested_st32(c + NESTED_VMCB_EXIT_INT_INFO_ERR, v->svm_exit_int_info_err);
    nested_st32(c + NESTED_VMCB_EVENT_INJ, v->svm_event_inj);
    nested_st32(c + NESTED_VMCB_EVENT_INJ_ERR, v->svm_event_inj_err);
    nested_st64(c + NESTED_VMCB_NEXT_RIP, v->svm_next_rip);
}

static void write_vmx(const NestedStateView *v, uint8_t *data)
{
    uint8_t *c = data + NS_VMCS12;

    nested_st64(data + NS_VMX(vmxon_pa), v->vmxon_pa);
    nested_st64(data + NS_VMX(vmcs12_pa), v->vmcs12_pa);
    nested_st16(data + NS_VMX(smm.flags), v->vmx_smm_flags);
    nested_st32(data + NS_VMX(flags), v->vmx_flags);
    nested_st64(data + NS_VMX(preemption_timer_deadline),
                v->vmx_preemption_timer_deadline);
    if (v->has_shadow_vmcs) {
        nested_st32(data + NS_SHADOW_VMCS12, v->vmx_shadow_revision);
    }
    if (!v->has_vmcs) {
        return;
    }
    nested_st32(c + NESTED_VMCS12_REVISION_ID, v->vmx_revision);
    nested_st32(c + NESTED_VMCS12_ENTRY_INTR_INFO, v->vmx_entry_intr_info);
    nested_st32(c + NESTED_VMCS12_ENTRY_EXCEPTION_ERROR_CODE,
                v->vmx_entry_exception_error_code);
    nested_st32(c + NESTED_VMCS12_ENTRY_INSTRUCTION_LEN,
                v->vmx_entry_instruction_len);
    nested_st32(c + NESTED_VMCS12_EXIT_INTR_INFO, v->vmx_exit_intr_info);
    nested_st32(c + NESTED_VMCS12_EXIT_INTR_ERROR_CODE,
                v->vmx_exit_intr_error_code);
    nested_st32(c + NESTED_VMCS12_IDT_VECTORING_INFO,
                v->vmx_idt_vectoring_info);
    nested_st32(c + NESTED_VMCS12_IDT_VECTORING_ERROR_CODE,
                v->vmx_idt_vectoring_error_code);
    nested_st32(c + NESTED_VMCS12_EXIT_INSTRUCTION_LEN,
                v->vmx_exit_instruction_len);
    nested_st32(c + NESTED_VMCS12_GUEST_INTERRUPTIBILITY,
                v->vmx_guest_interruptibility);
}

bool nested_state_encode(const NestedStateView *in, uint8_t *data,
                         size_t len, GError **errp)
{
    g_autofree uint8_t *tmp = NULL;
    NestedStateView check;

    if (in->size < NESTED_STATE_HDR_SIZE || in->size > NESTED_STATE_VMX_MAX) {
        return nested_event_fail(errp, NESTED_EVENT_ERROR_INVALID,
                                 "size=%u: not a kvm_nested_state size",
                                 in->size);
    }
    if (len < in->size) {
        return nested_event_fail(errp, NESTED_EVENT_ERROR_TRUNCATED,
                                 "size=%u: buffer has %zu bytes", in->size,
                                 len);
    }
    tmp = g_malloc0(in->size);
    nested_st16(tmp + NS_OFF(flags), in->flags);
    nested_st16(tmp + NS_OFF(format), in->format);
    nested_st32(tmp + NS_OFF(size), in->size);
    if (in->format == KVM_STATE_NESTED_FORMAT_SVM) {
        write_svm(in, tmp);
    } else {
        write_vmx(in, tmp);
    }
    /* A blob the product's decoder refuses is no input for a test. */
    if (!nested_state_decode(tmp, in->size, &check, errp)) {
        return false;
    }
    memcpy(data, tmp, in->size);
    return true;
}

/* ------------------------------------------------------------------ */
/* The event model                                                    */
/* ------------------------------------------------------------------ */

static bool event_equal(const NestedEvent *a, const NestedEvent *b)
{
    return a->valid == b->valid && a->type == b->type &&
           a->vector == b->vector && a->origin == b->origin &&
           a->has_error_code == b->has_error_code &&
           a->error_code == b->error_code && a->insn_len == b->insn_len &&
           a->old_rip == b->old_rip && a->next_rip == b->next_rip &&
           a->cs_base == b->cs_base;
}

static bool exception_equal(const NestedPendingException *a,
                            const NestedPendingException *b)
{
    return a->pending == b->pending && a->vector == b->vector &&
           a->has_error_code == b->has_error_code &&
           a->error_code == b->error_code &&
           a->has_payload == b->has_payload && a->payload == b->payload;
}

static bool level_equal(const NestedEventLevel *a, const NestedEventLevel *b)
{
    return event_equal(&a->injected, &b->injected) &&
           exception_equal(&a->exception, &b->exception) &&
           a->nmi_pending == b->nmi_pending &&
           a->nmi_masked == b->nmi_masked &&
           a->interrupt_shadow == b->interrupt_shadow;
}

bool nested_event_state_equal(const NestedEventState *a,
                              const NestedEventState *b)
{
    return a->vendor == b->vendor && a->guest_mode == b->guest_mode &&
           a->nested_run_pending == b->nested_run_pending &&
           a->gif == b->gif &&
           a->triple_fault_pending == b->triple_fault_pending &&
           a->sipi_vector_valid == b->sipi_vector_valid &&
           a->sipi_vector == b->sipi_vector &&
           a->smi.smm == b->smi.smm && a->smi.pending == b->smi.pending &&
           a->smi.smm_inside_nmi == b->smi.smm_inside_nmi &&
           a->smi.latched_init == b->smi.latched_init &&
           level_equal(&a->l1, &b->l1) && level_equal(&a->l2, &b->l2);
}

/* ------------------------------------------------------------------ */
/* cpu/nested-events version 2                                        */
/* ------------------------------------------------------------------ */

/*
 * One entry per VMState field of vmstate_nested_event_wire, in order:
 * a field is on the wire when its flag bit is set in the byte already
 * read at flag_offset (no flag: always).
 */
typedef struct WireField {
    const char *name;
    size_t offset;
    uint8_t width;
    int flag_offset;
    uint8_t flag;
} WireField;

#define WF(f, w, fo, fl) { #f, offsetof(NestedEventWire, f), w, fo, fl }
#define WIRE_ALWAYS -1
#define WIRE_IF(f) ((int)offsetof(NestedEventWire, f))

static const WireField wire_fields[] = {
    WF(flags, 1, WIRE_ALWAYS, 0),
    WF(shadow, 1, WIRE_ALWAYS, 0),
    WF(event, 1, WIRE_IF(flags), NESTED_WIRE_EVENT),
    WF(vector, 1, WIRE_IF(flags), NESTED_WIRE_EVENT),
    WF(error_code, 4, WIRE_IF(event), NESTED_WIRE_EVENT_ERROR_CODE),
    WF(exc_vector, 1, WIRE_IF(flags), NESTED_WIRE_EXCEPTION),
    WF(exc_info, 1, WIRE_IF(flags), NESTED_WIRE_EXCEPTION),
    WF(exc_error_code, 4, WIRE_IF(exc_info), NESTED_WIRE_EXC_ERROR_CODE),
    WF(exc_payload, 8, WIRE_IF(exc_info), NESTED_WIRE_EXC_PAYLOAD),
};

static bool wire_field_present(const NestedEventWire *w, const WireField *f)
{
    return f->flag_offset == WIRE_ALWAYS ||
           (((const uint8_t *)w)[f->flag_offset] & f->flag);
}

static uint64_t wire_get(const NestedEventWire *w, const WireField *f)
{
    const uint8_t *p = (const uint8_t *)w + f->offset;

    switch (f->width) {
    case 1:
        return *p;
    case 4:
        return *(const uint32_t *)p;
    default:
        return *(const uint64_t *)p;
    }
}

static void wire_set(NestedEventWire *w, const WireField *f, uint64_t v)
{
    uint8_t *p = (uint8_t *)w + f->offset;

    switch (f->width) {
    case 1:
        *p = v;
        break;
    case 4:
        *(uint32_t *)p = v;
        break;
    default:
        *(uint64_t *)p = v;
        break;
    }
}

size_t nested_event_wire_write(const NestedEventWire *w, uint8_t *data,
                               size_t len)
{
    size_t i, j, n = 0;

    for (i = 0; i < G_N_ELEMENTS(wire_fields); i++) {
        const WireField *f = &wire_fields[i];
        uint64_t v;

        if (!wire_field_present(w, f)) {
            continue;
        }
        if (len - n < f->width) {
            return 0;
        }
        v = wire_get(w, f);
        for (j = 0; j < f->width; j++) {
            data[n + j] = v >> (8 * (f->width - 1 - j));
        }
        n += f->width;
    }
    return n;
}

bool nested_event_wire_read(const uint8_t *data, size_t len,
                            NestedEventWire *w, size_t *used, GError **errp)
{
    size_t i, j, n = 0;

    memset(w, 0, sizeof(*w));
    for (i = 0; i < G_N_ELEMENTS(wire_fields); i++) {
        const WireField *f = &wire_fields[i];
        uint64_t v = 0;

        if (!wire_field_present(w, f)) {
            continue;
        }
        if (len - n < f->width) {
            *used = n;
            return nested_event_fail(errp, NESTED_EVENT_ERROR_TRUNCATED,
                                     "%s: the stream ends after %zu of its "
                                     "%u bytes", f->name, len - n, f->width);
        }
        for (j = 0; j < f->width; j++) {
            v = v << 8 | data[n + j];
        }
        wire_set(w, f, v);
        n += f->width;
    }
    *used = n;
    return true;
}
