/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * Decoder of KVM's struct kvm_nested_state.  Every input is untrusted:
 * lengths and offsets are checked before any read.
 */

#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <linux/kvm.h>

#include "nested-bytes.h"
#include "nested-events.h"
#include "nested-state.h"

G_STATIC_ASSERT(sizeof(struct kvm_nested_state) == NESTED_STATE_HDR_SIZE);
G_STATIC_ASSERT(offsetof(struct kvm_nested_state, data) ==
                NESTED_STATE_HDR_SIZE);
G_STATIC_ASSERT(offsetof(struct kvm_nested_state, hdr) == 8);
G_STATIC_ASSERT(sizeof(struct kvm_vmx_nested_state_hdr) == 32);
G_STATIC_ASSERT(KVM_STATE_NESTED_VMX_VMCS_SIZE == NESTED_STATE_VMCS_SIZE);
G_STATIC_ASSERT(KVM_STATE_NESTED_SVM_VMCB_SIZE == NESTED_STATE_VMCS_SIZE);

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

static bool check_zero(const uint8_t *data, uint32_t from, uint32_t to,
                       const char *what, GError **errp)
{
    uint32_t i;

    for (i = from; i < to; i++) {
        if (data[i]) {
            return nested_event_fail(errp, NESTED_EVENT_ERROR_RESERVED,
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

    v->svm_int_ctl = nested_ld32(c + NESTED_VMCB_INT_CTL);
    v->svm_int_state = nested_ld32(c + NESTED_VMCB_INT_STATE);
    v->svm_exit_int_info = nested_ld32(c + NESTED_VMCB_EXIT_INT_INFO);
    v->svm_exit_int_info_err = nested_ld32(c + NESTED_VMCB_EXIT_INT_INFO_ERR);
    v->svm_event_inj = nested_ld32(c + NESTED_VMCB_EVENT_INJ);
    v->svm_event_inj_err = nested_ld32(c + NESTED_VMCB_EVENT_INJ_ERR);
    v->svm_next_rip = nested_ld64(c + NESTED_VMCB_NEXT_RIP);
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
        return nested_event_fail(errp, NESTED_EVENT_ERROR_INVALID,
                                 "flags=0x%x: bits 0x%x not valid for SVM",
                                 v->flags, v->flags & ~known);
    }
    if ((v->flags & KVM_STATE_NESTED_RUN_PENDING) && !guest) {
        return nested_event_fail(errp, NESTED_EVENT_ERROR_INVALID,
                                 "flags=0x%x: RUN_PENDING without GUEST_MODE",
                                 v->flags);
    }
    if (v->size != (guest ? NESTED_STATE_SVM_MAX : NESTED_STATE_HDR_SIZE)) {
        return nested_event_fail(
            errp, NESTED_EVENT_ERROR_INVALID,
            "size=%u: SVM state is %u bytes %s guest mode", v->size,
            guest ? NESTED_STATE_SVM_MAX : NESTED_STATE_HDR_SIZE,
            guest ? "in" : "outside");
    }
    v->vmcb_pa = nested_ld64(data + NS_SVM_VMCB_PA);
    if (!check_zero(data, NS_HDR + NS_SVM_HDR_USED, NS_HDR + NS_HDR_LEN,
                    "hdr.svm.pad", errp)) {
        return false;
    }
    if (!guest) {
        if (v->vmcb_pa) {
            return nested_event_fail(errp, NESTED_EVENT_ERROR_INVALID,
                                     "hdr.svm.vmcb_pa=0x%" PRIx64
                                     ": set outside "
                                     "guest mode",
                                     v->vmcb_pa);
        }
        return true;
    }
    if (!page_aligned(v->vmcb_pa)) {
        return nested_event_fail(
            errp, NESTED_EVENT_ERROR_INVALID,
            "hdr.svm.vmcb_pa=0x%" PRIx64 ": not page aligned", v->vmcb_pa);
    }
    v->has_vmcs = true;
    read_svm_vmcb12(data, v);
    return true;
}

static void read_vmcs12(const uint8_t *data, NestedStateView *v)
{
    const uint8_t *c = data + NS_DATA;

    v->vmx_revision = nested_ld32(c + NESTED_VMCS12_REVISION_ID);
    v->vmx_entry_intr_info = nested_ld32(c + NESTED_VMCS12_ENTRY_INTR_INFO);
    v->vmx_entry_exception_error_code =
        nested_ld32(c + NESTED_VMCS12_ENTRY_EXCEPTION_ERROR_CODE);
    v->vmx_entry_instruction_len =
        nested_ld32(c + NESTED_VMCS12_ENTRY_INSTRUCTION_LEN);
    v->vmx_exit_intr_info = nested_ld32(c + NESTED_VMCS12_EXIT_INTR_INFO);
    v->vmx_exit_intr_error_code =
        nested_ld32(c + NESTED_VMCS12_EXIT_INTR_ERROR_CODE);
    v->vmx_idt_vectoring_info =
        nested_ld32(c + NESTED_VMCS12_IDT_VECTORING_INFO);
    v->vmx_idt_vectoring_error_code =
        nested_ld32(c + NESTED_VMCS12_IDT_VECTORING_ERROR_CODE);
    v->vmx_exit_instruction_len =
        nested_ld32(c + NESTED_VMCS12_EXIT_INSTRUCTION_LEN);
    v->vmx_guest_interruptibility =
        nested_ld32(c + NESTED_VMCS12_GUEST_INTERRUPTIBILITY);
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

    v->vmxon_pa = nested_ld64(data + NS_VMX_VMXON_PA);
    v->vmcs12_pa = nested_ld64(data + NS_VMX_VMCS12_PA);
    v->vmx_smm_flags = nested_ld16(data + NS_VMX_SMM_FLAGS);
    v->vmx_flags = nested_ld32(data + NS_VMX_FLAGS);
    v->vmx_preemption_timer_deadline = nested_ld64(data + NS_VMX_DEADLINE);

    if (v->flags & ~known) {
        return nested_event_fail(errp, NESTED_EVENT_ERROR_INVALID,
                                 "flags=0x%x: bits 0x%x not valid for VMX",
                                 v->flags, v->flags & ~known);
    }
    if ((v->flags & (KVM_STATE_NESTED_RUN_PENDING |
                     KVM_STATE_NESTED_MTF_PENDING)) && !guest) {
        return nested_event_fail(errp, NESTED_EVENT_ERROR_INVALID,
                                 "flags=0x%x: RUN_PENDING/MTF_PENDING without "
                                 "GUEST_MODE",
                                 v->flags);
    }
    if (nested_ld16(data + NS_VMX_PAD)) {
        return nested_event_fail(errp, NESTED_EVENT_ERROR_RESERVED,
                                 "hdr.vmx.pad=0x%x: must be 0",
                                 nested_ld16(data + NS_VMX_PAD));
    }
    if (!check_zero(data, NS_HDR + NS_VMX_HDR_USED, NS_HDR + NS_HDR_LEN,
                    "hdr.vmx.reserved", errp)) {
        return false;
    }
    if (v->vmx_smm_flags & ~smm_known) {
        return nested_event_fail(errp, NESTED_EVENT_ERROR_INVALID,
                                 "hdr.vmx.smm.flags=0x%x: unknown bits",
                                 v->vmx_smm_flags);
    }
    if ((v->vmx_smm_flags & KVM_STATE_NESTED_SMM_GUEST_MODE) &&
        (guest || !(v->vmx_smm_flags & KVM_STATE_NESTED_SMM_VMXON))) {
        return nested_event_fail(errp, NESTED_EVENT_ERROR_INVALID,
                                 "hdr.vmx.smm.flags=0x%x: SMM_GUEST_MODE needs "
                                 "SMM_VMXON and excludes GUEST_MODE",
                                 v->vmx_smm_flags);
    }
    if (v->vmx_flags & ~KVM_STATE_VMX_PREEMPTION_TIMER_DEADLINE) {
        return nested_event_fail(errp, NESTED_EVENT_ERROR_INVALID,
                                 "hdr.vmx.flags=0x%x: unknown bits",
                                 v->vmx_flags);
    }
    return true;
}

static bool decode_vmx_outside_vmx(NestedStateView *v, GError **errp)
{
    if (v->vmx_smm_flags || v->vmcs12_pa != NESTED_STATE_INVALID_GPA ||
        (v->flags & ~KVM_STATE_NESTED_EVMCS) || v->vmx_flags) {
        return nested_event_fail(
            errp, NESTED_EVENT_ERROR_INVALID,
            "hdr.vmx.vmxon_pa=-1: outside VMX operation only "
            "flags=EVMCS is allowed (flags=0x%x, vmcs12_pa=0x%" PRIx64
            ", smm.flags=0x%x)",
            v->flags, v->vmcs12_pa, v->vmx_smm_flags);
    }
    if (v->size != NESTED_STATE_HDR_SIZE) {
        return nested_event_fail(errp, NESTED_EVENT_ERROR_INVALID,
                                 "size=%u: no vmcs12 outside VMX operation",
                                 v->size);
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
            return nested_event_fail(
                errp, NESTED_EVENT_ERROR_INVALID,
                "size=%u: flags=0x%x / vmcs12_pa=0x%" PRIx64 " need a vmcs12",
                v->size, v->flags, v->vmcs12_pa);
        }
        return true;
    }
    if (v->size != NESTED_STATE_HDR_SIZE + NESTED_STATE_VMCS_SIZE &&
        v->size != NESTED_STATE_VMX_MAX) {
        return nested_event_fail(errp, NESTED_EVENT_ERROR_INVALID,
                                 "size=%u: VMX state is %u, %u or %u bytes",
                                 v->size, NESTED_STATE_HDR_SIZE,
                                 NESTED_STATE_HDR_SIZE + NESTED_STATE_VMCS_SIZE,
                                 NESTED_STATE_VMX_MAX);
    }
    if (v->vmcs12_pa == NESTED_STATE_INVALID_GPA) {
        if (!(v->flags & KVM_STATE_NESTED_EVMCS)) {
            return nested_event_fail(
                errp, NESTED_EVENT_ERROR_INVALID,
                "hdr.vmx.vmcs12_pa=-1: vmcs12 data without a "
                "current VMCS or eVMCS");
        }
    } else if (!page_aligned(v->vmcs12_pa) ||
               v->vmcs12_pa == v->vmxon_pa) {
        return nested_event_fail(errp, NESTED_EVENT_ERROR_INVALID,
                                 "hdr.vmx.vmcs12_pa=0x%" PRIx64
                                 ": not page aligned "
                                 "or equal to vmxon_pa",
                                 v->vmcs12_pa);
    }
    v->has_vmcs = true;
    read_vmcs12(data, v);
    if ((v->vmx_revision & ~NESTED_VMCS12_SHADOW_BIT) !=
        NESTED_VMCS12_REVISION) {
        return nested_event_fail(errp, NESTED_EVENT_ERROR_INVALID,
                                 "vmcs12.revision_id=0x%08x: expected 0x%08x",
                                 v->vmx_revision, NESTED_VMCS12_REVISION);
    }
    if (v->size == NESTED_STATE_VMX_MAX) {
        v->has_shadow_vmcs = true;
        v->vmx_shadow_revision = nested_ld32(data + NS_SHADOW);
        if (v->vmx_shadow_revision !=
            (NESTED_VMCS12_REVISION | NESTED_VMCS12_SHADOW_BIT)) {
            return nested_event_fail(
                errp, NESTED_EVENT_ERROR_INVALID,
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
        return nested_event_fail(
            errp, NESTED_EVENT_ERROR_INVALID,
            "hdr.vmx.vmxon_pa=0x%" PRIx64 ": not page aligned", v->vmxon_pa);
    }
    return decode_vmx_vmcs12(data, v, errp);
}

bool nested_state_decode(const uint8_t *data, size_t len,
                         NestedStateView *out, GError **errp)
{
    size_t max;

    memset(out, 0, sizeof(*out));
    if (len < NESTED_STATE_HDR_SIZE) {
        return nested_event_fail(errp, NESTED_EVENT_ERROR_TRUNCATED,
                                 "kvm_nested_state.len=%zu: header is %u bytes",
                                 len, NESTED_STATE_HDR_SIZE);
    }
    out->flags = nested_ld16(data + NS_FLAGS);
    out->format = nested_ld16(data + NS_FORMAT);
    out->size = nested_ld32(data + NS_SIZE);
    if (out->format == KVM_STATE_NESTED_FORMAT_SVM) {
        max = NESTED_STATE_SVM_MAX;
    } else if (out->format == KVM_STATE_NESTED_FORMAT_VMX) {
        max = NESTED_STATE_VMX_MAX;
    } else {
        return nested_event_fail(errp, NESTED_EVENT_ERROR_INVALID,
                                 "format=%u: neither VMX (0) nor SVM (1)",
                                 out->format);
    }
    if (out->size < NESTED_STATE_HDR_SIZE) {
        return nested_event_fail(errp, NESTED_EVENT_ERROR_INVALID,
                                 "size=%u: smaller than the %u-byte header",
                                 out->size, NESTED_STATE_HDR_SIZE);
    }
    if (out->size > max || len > max) {
        return nested_event_fail(
            errp, NESTED_EVENT_ERROR_OVERSIZED,
            "size=%u (buffer %zu): more than the %zu bytes of "
            "format %u",
            out->size, len, max, out->format);
    }
    if (out->size > len) {
        return nested_event_fail(errp, NESTED_EVENT_ERROR_TRUNCATED,
                                 "size=%u: only %zu bytes present", out->size,
                                 len);
    }
    if (out->format == KVM_STATE_NESTED_FORMAT_SVM) {
        return decode_svm(data, out, errp);
    }
    return decode_vmx(data, out, errp);
}
