/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * struct kvm_nested_state: the layout of the blob KVM_GET_NESTED_STATE
 * returns, and a decoder that reads what the event model needs from it.
 * The blob is untrusted: lengths and offsets are checked before any read.
 */

#ifndef TARGET_I386_NESTED_STATE_H
#define TARGET_I386_NESTED_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <glib.h>

#define NESTED_STATE_HDR_SIZE 128u
#define NESTED_STATE_VMCS_SIZE 0x1000u
#define NESTED_STATE_SVM_MAX (NESTED_STATE_HDR_SIZE + NESTED_STATE_VMCS_SIZE)
#define NESTED_STATE_VMX_MAX \
    (NESTED_STATE_HDR_SIZE + 2 * NESTED_STATE_VMCS_SIZE)
#define NESTED_STATE_INVALID_GPA UINT64_MAX

/* vmcb_control_area offsets (arch/x86/include/asm/svm.h, APM app. B). */
#define NESTED_VMCB_INT_CTL 0x60u
#define NESTED_VMCB_INT_STATE 0x68u
#define NESTED_VMCB_EXIT_INT_INFO 0x88u
#define NESTED_VMCB_EXIT_INT_INFO_ERR 0x8cu
#define NESTED_VMCB_EVENT_INJ 0xa8u
#define NESTED_VMCB_EVENT_INJ_ERR 0xacu
#define NESTED_VMCB_NEXT_RIP 0xc8u

/* struct vmcs12 offsets (arch/x86/kvm/vmx/vmcs12.h, CHECK_OFFSET). */
#define NESTED_VMCS12_REVISION_ID 0u
#define NESTED_VMCS12_ENTRY_INTR_INFO 788u
#define NESTED_VMCS12_ENTRY_EXCEPTION_ERROR_CODE 792u
#define NESTED_VMCS12_ENTRY_INSTRUCTION_LEN 796u
#define NESTED_VMCS12_EXIT_INTR_INFO 816u
#define NESTED_VMCS12_EXIT_INTR_ERROR_CODE 820u
#define NESTED_VMCS12_IDT_VECTORING_INFO 824u
#define NESTED_VMCS12_IDT_VECTORING_ERROR_CODE 828u
#define NESTED_VMCS12_EXIT_INSTRUCTION_LEN 832u
#define NESTED_VMCS12_GUEST_INTERRUPTIBILITY 912u
/* Its bit 3: blocking by NMI (SDM Vol. 3C 25.4.2, Table 25-3) */
#define NESTED_VMX_GII_BLOCKING_BY_NMI  (1u << 3)
#define NESTED_VMCS12_REVISION 0x11e57ed0u
#define NESTED_VMCS12_SHADOW_BIT (1u << 31)

/*
 * The parts of a kvm_nested_state blob that the event model uses.  The
 * blob's other bytes (L1's save area, the rest of vmcb12/vmcs12) are not
 * represented: restore edits the source blob in place instead.
 */
typedef struct NestedStateView {
    uint16_t flags;
    uint16_t format;
    uint32_t size;
    bool has_vmcs;              /* data.svm[0] / data.vmx[0].vmcs12 */
    bool has_shadow_vmcs;       /* data.vmx[0].shadow_vmcs12 */
    /* hdr.svm */
    uint64_t vmcb_pa;
    /* hdr.vmx */
    uint64_t vmxon_pa;
    uint64_t vmcs12_pa;
    uint16_t vmx_smm_flags;
    uint32_t vmx_flags;
    uint64_t vmx_preemption_timer_deadline;
    /* vmcb12 control area */
    uint32_t svm_int_ctl;
    uint32_t svm_int_state;
    uint32_t svm_exit_int_info;
    uint32_t svm_exit_int_info_err;
    uint32_t svm_event_inj;
    uint32_t svm_event_inj_err;
    uint64_t svm_next_rip;
    /* vmcs12 */
    uint32_t vmx_revision;
    uint32_t vmx_shadow_revision;
    uint32_t vmx_entry_intr_info;
    uint32_t vmx_entry_exception_error_code;
    uint32_t vmx_entry_instruction_len;
    uint32_t vmx_exit_intr_info;
    uint32_t vmx_exit_intr_error_code;
    uint32_t vmx_idt_vectoring_info;
    uint32_t vmx_idt_vectoring_error_code;
    uint32_t vmx_exit_instruction_len;
    uint32_t vmx_guest_interruptibility;
} NestedStateView;

/*
 * Parse a blob of len bytes.  The header's size field must fit in len;
 * bytes past size are not looked at.  Checks format, flag combinations
 * (as svm_set_nested_state()/vmx_set_nested_state() do), size against
 * what the flags require, header padding and the vmcs12 revision.
 */
bool nested_state_decode(const uint8_t *data, size_t len,
                         NestedStateView *out, GError **errp);

#endif /* TARGET_I386_NESTED_STATE_H */
