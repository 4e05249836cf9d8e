/*
 * nkvm-guest: what the guest's VMX hypervisor scenarios share
 *
 * VMCS field encodings (Intel SDM Vol. 3D, Appendix B), the controls,
 * exit reasons and interruption-information bits the scenarios use
 * (Vol. 3C, chapters 25 and 26), and small helpers: enter VMX
 * operation, load a VMCS, fill in its host state and a guest state that
 * mirrors L1's own, and run L2.  Only what the scenarios need is named.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef NKVM_VMX_LIB_H
#define NKVM_VMX_LIB_H

#include "nkvm-guest.h"

#define CPUID_1_ECX_VMX             (1u << 5)

#define MSR_IA32_FEATURE_CONTROL    0x03a
#define FEATURE_CONTROL_LOCKED      (1u << 0)
#define FEATURE_CONTROL_VMXON       (1u << 2)   /* outside SMX */
#define MSR_VMX_BASIC               0x480
#define VMX_BASIC_TRUE_CTLS         (1ull << 55)
#define MSR_VMX_PINBASED_CTLS       0x481
#define MSR_VMX_PROCBASED_CTLS      0x482
#define MSR_VMX_EXIT_CTLS           0x483
#define MSR_VMX_ENTRY_CTLS          0x484
#define MSR_VMX_MISC                0x485
#define VMX_MISC_ZERO_LEN_INJECT    (1ull << 30)
#define MSR_VMX_CR0_FIXED0          0x486
#define MSR_VMX_CR0_FIXED1          0x487
#define MSR_VMX_CR4_FIXED0          0x488
#define MSR_VMX_CR4_FIXED1          0x489
#define MSR_VMX_PROCBASED_CTLS2     0x48b
#define MSR_VMX_EPT_VPID_CAP        0x48c
#define EPT_CAP_WALK_4              (1ull << 6)
#define EPT_CAP_WB                  (1ull << 14)
#define EPT_CAP_2M                  (1ull << 16)
#define EPT_CAP_INVEPT              (1ull << 20)
#define EPT_CAP_INVEPT_SINGLE       (1ull << 25)
#define MSR_VMX_TRUE_PINBASED_CTLS  0x48d
#define MSR_VMX_TRUE_PROCBASED_CTLS 0x48e
#define MSR_VMX_TRUE_EXIT_CTLS      0x48f
#define MSR_VMX_TRUE_ENTRY_CTLS     0x490

#define CR4_VMXE                    (1u << 13)

/* VMCS fields (SDM Vol. 3D, Appendix B) */
#define VMCS_GUEST_ES_SEL           0x0800  /* ES..GS, LDTR, TR: +2 each */
#define VMCS_GUEST_TR_SEL           0x080e
#define VMCS_HOST_ES_SEL            0x0c00  /* ES, CS, SS, DS, FS, GS */
#define VMCS_HOST_CS_SEL            0x0c02
#define VMCS_HOST_SS_SEL            0x0c04
#define VMCS_HOST_DS_SEL            0x0c06
#define VMCS_HOST_FS_SEL            0x0c08
#define VMCS_HOST_GS_SEL            0x0c0a
#define VMCS_HOST_TR_SEL            0x0c0c
#define VMCS_EPT_POINTER            0x201a
#define VMCS_GUEST_PHYS_ADDR        0x2400
#define VMCS_LINK_POINTER           0x2800
#define VMCS_GUEST_DEBUGCTL         0x2802
#define VMCS_GUEST_EFER             0x2806
#define VMCS_HOST_EFER              0x2c02
#define VMCS_PIN_CONTROLS           0x4000
#define VMCS_PROC_CONTROLS          0x4002
#define VMCS_EXCEPTION_BITMAP       0x4004
#define VMCS_EXIT_CONTROLS          0x400c
#define VMCS_ENTRY_CONTROLS         0x4012
#define VMCS_ENTRY_INTR_INFO        0x4016
#define VMCS_ENTRY_EXCEPTION_ERR    0x4018
#define VMCS_ENTRY_INSN_LEN         0x401a
#define VMCS_PROC_CONTROLS2         0x401e
#define VMCS_INSN_ERROR             0x4400
#define VMCS_EXIT_REASON            0x4402
#define VMCS_EXIT_INTR_INFO         0x4404
#define VMCS_EXIT_INTR_ERR          0x4406
#define VMCS_IDT_VECTORING_INFO     0x4408
#define VMCS_IDT_VECTORING_ERR      0x440a
#define VMCS_EXIT_INSN_LEN          0x440c
#define VMCS_GUEST_ES_LIMIT         0x4800  /* ES..GS, LDTR, TR: +2 each */
#define VMCS_GUEST_GDTR_LIMIT       0x4810
#define VMCS_GUEST_IDTR_LIMIT       0x4812
#define VMCS_GUEST_ES_AR            0x4814  /* ES..GS, LDTR, TR: +2 each */
#define VMCS_GUEST_INTERRUPTIBILITY 0x4824
#define VMCS_GUEST_ACTIVITY         0x4826
#define VMCS_GUEST_SYSENTER_CS      0x482a
#define VMCS_HOST_SYSENTER_CS       0x4c00
#define VMCS_CR0_MASK               0x6000
#define VMCS_CR4_MASK               0x6002
#define VMCS_CR0_SHADOW             0x6004
#define VMCS_CR4_SHADOW             0x6006
#define VMCS_EXIT_QUALIFICATION     0x6400
#define VMCS_GUEST_CR0              0x6800
#define VMCS_GUEST_CR3              0x6802
#define VMCS_GUEST_CR4              0x6804
#define VMCS_GUEST_ES_BASE          0x6806  /* ES..GS, LDTR, TR: +2 each */
#define VMCS_GUEST_GDTR_BASE        0x6816
#define VMCS_GUEST_IDTR_BASE        0x6818
#define VMCS_GUEST_DR7              0x681a
#define VMCS_GUEST_RSP              0x681c
#define VMCS_GUEST_RIP              0x681e
#define VMCS_GUEST_RFLAGS           0x6820
#define VMCS_GUEST_PENDING_DBG      0x6822
#define VMCS_GUEST_SYSENTER_ESP     0x6824
#define VMCS_GUEST_SYSENTER_EIP     0x6826
#define VMCS_HOST_CR0               0x6c00
#define VMCS_HOST_CR3               0x6c02
#define VMCS_HOST_CR4               0x6c04
#define VMCS_HOST_FS_BASE           0x6c06
#define VMCS_HOST_GS_BASE           0x6c08
#define VMCS_HOST_TR_BASE           0x6c0a
#define VMCS_HOST_GDTR_BASE         0x6c0c
#define VMCS_HOST_IDTR_BASE         0x6c0e
#define VMCS_HOST_SYSENTER_ESP      0x6c10
#define VMCS_HOST_SYSENTER_EIP      0x6c12
#define VMCS_HOST_RSP               0x6c14
#define VMCS_HOST_RIP               0x6c16

/* Segment registers in VMCS order (SDM Vol. 3D, B.1.2) */
enum { VMX_ES, VMX_CS, VMX_SS, VMX_DS, VMX_FS, VMX_GS, VMX_LDTR, VMX_TR };

/* Pin-based controls (SDM Vol. 3C, 25.6.1, Table 25-5) */
#define PIN_EXTINT_EXITING          (1u << 0)
#define PIN_NMI_EXITING             (1u << 3)
#define PIN_VIRTUAL_NMIS            (1u << 5)
/* Primary processor-based controls (Table 25-6) */
#define PROC_HLT_EXITING            (1u << 7)
#define PROC_UNCOND_IO_EXITING      (1u << 24)
#define PROC_SECONDARY              (1u << 31)
/* Secondary processor-based controls (Table 25-7) */
#define PROC2_EPT                   (1u << 1)
/* VM-exit controls (Table 25-14) */
#define EXIT_HOST_64                (1u << 9)
#define EXIT_SAVE_EFER              (1u << 20)
#define EXIT_LOAD_EFER              (1u << 21)
/* VM-entry controls (Table 25-16) */
#define ENTRY_IA32E_GUEST           (1u << 9)
#define ENTRY_LOAD_EFER             (1u << 15)

/* Basic exit reasons (SDM Vol. 3D, Appendix C) */
#define EXIT_REASON_EXCEPTION_NMI   0
#define EXIT_REASON_EXTINT          1
#define EXIT_REASON_TRIPLE_FAULT    2
#define EXIT_REASON_HLT             12
#define EXIT_REASON_VMCALL          18
#define EXIT_REASON_IO              30
#define EXIT_REASON_BAD_GUEST       33
#define EXIT_REASON_EPT_VIOLATION   48
#define EXIT_REASON_EPT_MISCONFIG   49
#define EXIT_REASON_ENTRY_FAILED    (1u << 31)

/*
 * VM-entry and IDT-vectoring interruption information (SDM Vol. 3C,
 * 25.8.3, Table 25-17; 25.9.3, Table 25-20)
 */
#define INTR_INFO_VECTOR_MASK       0xffu
#define INTR_TYPE_EXT_INTR          (0u << 8)
#define INTR_TYPE_NMI               (2u << 8)
#define INTR_TYPE_HARD_EXCEPTION    (3u << 8)
#define INTR_TYPE_SOFT_INTR         (4u << 8)
#define INTR_TYPE_PRIV_SOFT_EXC     (5u << 8)
#define INTR_TYPE_SOFT_EXCEPTION    (6u << 8)
#define INTR_TYPE_MASK              (7u << 8)
#define INTR_INFO_DELIVER_CODE      (1u << 11)
#define INTR_INFO_VALID             (1u << 31)

/* Guest interruptibility state (SDM Vol. 3C, 25.4.2, Table 25-3) */
#define INTERRUPTIBILITY_NMI        (1u << 3)

/* Access rights in VMCS form (SDM Vol. 3C, 25.4.1, Table 25-2) */
#define VMX_AR_CODE64               0xa09b  /* G, L, P, S, execute/read, A */
#define VMX_AR_DATA                 0xc093  /* G, D/B, P, S, read/write, A */
#define VMX_AR_TSS64_BUSY           0x008b
#define VMX_AR_UNUSABLE             (1u << 16)

/* EPT entries and pointer (SDM Vol. 3C, 29.3.2 and 25.6.11) */
#define EPT_RWX                     0x7ull
#define EPT_MT_WB                   (6ull << 3)  /* in a leaf entry */
#define EPT_LARGE                   (1ull << 7)
#define EPTP_WB_4LEVEL              (6ull | (3ull << 3))

/* A selector for each vCPU's TSS in the GDT that vmx_enable() loads */
#define VMX_TSS_SEL(cpu)            (0x20 + 16 * (cpu))

/* What VMX offers, read once by vmx_probe() */
typedef struct VmxCaps {
    uint64_t basic;
    uint64_t misc;
    uint64_t ept_vpid;
    uint64_t pin, proc, proc2, exit, entry; /* allowed 0 / allowed 1 */
} VmxCaps;

/*
 * L2's general registers that the VMCS does not hold (RSP and RIP it
 * does).  Offsets are used by vmx_run().
 */
typedef struct VmxGuestRegs {
    uint64_t rax, rbx, rcx, rdx, rsi, rdi, rbp;
    uint64_t r8, r9, r10, r11, r12, r13, r14, r15;
} VmxGuestRegs;

/* The outcome of vmx_run() */
enum {
    VMX_RUN_EXIT,           /* L2 ran and exited: read the exit reason */
    VMX_RUN_FAIL_INVALID,   /* VMfailInvalid: no current VMCS */
    VMX_RUN_FAIL_VALID,     /* VMfailValid: see VMCS_INSN_ERROR */
};

static inline uint64_t vmread(uint64_t field)
{
    uint64_t v;

    asm volatile("vmread %1, %0" : "=r"(v) : "r"(field) : "cc");
    return v;
}

/* True on success; VMfail sets CF or ZF (SDM Vol. 3C, 31.2) */
static inline bool vmwrite(uint64_t field, uint64_t v)
{
    bool fail;

    asm volatile("vmwrite %2, %1\n\tsetna %0"
                 : "=q"(fail) : "r"(field), "r"(v) : "cc", "memory");
    return !fail;
}

/* vmx-lib.c */
/* False if CPUID has no VMX; else read the capability MSRs into *caps. */
bool vmx_probe(VmxCaps *caps);
/*
 * The control value for the capability pair cap (allowed 0 settings
 * low, allowed 1 settings high) with the bits of want set; the bits of
 * want that cap cannot set are added to *missing.
 */
uint32_t vmx_control(uint64_t cap, uint32_t want, uint32_t *missing);
/*
 * Enter VMX operation on this vCPU (index cpu, for its TSS): the
 * feature-control MSR, CR0 and CR4 fixed bits, CR4.VMXE, a GDT with a
 * TSS loaded in TR (VM exits load TR, so the host state needs one),
 * then VMXON on region.  Returns NULL or what failed.
 */
const char *vmx_enable(const VmxCaps *caps, unsigned cpu, void *region);
/* VMCLEAR and VMPTRLD vmcs.  Returns NULL or what failed. */
const char *vmx_vmcs_load(const VmxCaps *caps, void *vmcs);
/*
 * The controls every VMX scenario uses, written into the current VMCS
 * with the host state: the pin-based controls pin_want, HLT and I/O
 * exiting, EPT with eptp, a 64-bit host and an IA-32e guest, EFER
 * loaded both ways where allowed, no exception exits.  Returns the
 * wanted bits the CPU cannot set (and writes nothing), else 0.
 */
uint32_t vmx_vmcs_setup(const VmxCaps *caps, unsigned cpu, uint32_t pin_want,
                        uint64_t eptp);
/*
 * Guest state that mirrors L1: flat 64-bit segments of L1's GDT, a busy
 * TSS in TR, L1's control registers and EFER, RFLAGS 0x2, nothing to
 * inject.  The caller sets RIP, RSP and the IDTR.
 */
void vmx_vmcs_guest_mirror_l1(unsigned cpu);
/*
 * VMLAUNCH (launched false) or VMRESUME with L2's registers from and
 * back to *regs; VMX_RUN_EXIT once L2 exits.
 */
int vmx_run(VmxGuestRegs *regs, bool launched);
/* where vmx_run()'s VM exits land: the host RIP of every VMCS */
extern char vmx_exit_point[];
/* INVEPT single-context for eptp (SDM Vol. 3C, 31.3, INVEPT) */
void vmx_invept(uint64_t eptp);

#endif
