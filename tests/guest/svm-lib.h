/*
 * nkvm-guest: what the guest's SVM hypervisor scenarios share
 *
 * VMCB offsets, exit codes and event-injection bits (AMD APM vol. 2,
 * Appendix B and C, 15.20), and small helpers to enable SVM, fill in
 * a VMCB from L1's own state and run L2.  Each scenario owns its VMCB
 * and passes it in.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef NKVM_SVM_LIB_H
#define NKVM_SVM_LIB_H

#include "nkvm-guest.h"

#define MSR_VM_HSAVE_PA         0xc0010117
#define EFER_SVME               (1 << 12)

/* VMCB control area (APM vol. 2, Table B-1) */
#define VMCB_CR_READ            0x000   /* 16 bits, CR0..CR15 */
#define VMCB_DR_READ            0x004   /* 16 bits, DR0..DR15 */
#define VMCB_EXCEPTIONS         0x008
#define VMCB_INTERCEPT          0x00c   /* vectors 3 and 4 as 64 bits */
#define VMCB_IOPM_BASE          0x040
#define VMCB_MSRPM_BASE         0x048
#define VMCB_ASID               0x058
#define VMCB_TLB_CONTROL        0x05c   /* 8 bits */
#define VMCB_EXIT_CODE          0x070
#define VMCB_EXIT_INFO_1        0x078
#define VMCB_EXIT_INFO_2        0x080
#define VMCB_EXIT_INT_INFO      0x088
#define VMCB_EXIT_INT_INFO_ERR  0x08c
#define VMCB_NP_ENABLE          0x090
#define VMCB_EVENT_INJ          0x0a8
#define VMCB_EVENT_INJ_ERR      0x0ac
#define VMCB_N_CR3              0x0b0
#define VMCB_VIRT_EXT           0x0b8   /* bit 0: LBR virtualization */
#define VMCB_NEXT_RIP           0x0c8

/* VMCB state save area (APM vol. 2, Table B-2) */
#define VMCB_ES                 0x400
#define VMCB_CS                 0x410
#define VMCB_SS                 0x420
#define VMCB_DS                 0x430
#define VMCB_GDTR               0x460
#define VMCB_IDTR               0x480
#define VMCB_CPL                0x4cb   /* 8 bits */
#define VMCB_EFER               0x4d0
#define VMCB_CR4                0x548
#define VMCB_CR3                0x550
#define VMCB_CR0                0x558
#define VMCB_DR7                0x560
#define VMCB_DR6                0x568
#define VMCB_RFLAGS             0x570
#define VMCB_RIP                0x578
#define VMCB_RSP                0x5d8
#define VMCB_RAX                0x5f8
#define VMCB_CR2                0x640
#define VMCB_G_PAT              0x668
#define VMCB_DBGCTL             0x670
#define VMCB_BR_FROM            0x678
#define VMCB_BR_TO              0x680
#define VMCB_LASTEXCP_FROM      0x688
#define VMCB_LASTEXCP_TO        0x690

/* Exit codes (APM vol. 2, Appendix C) */
#define EXIT_READ_CR0           0x000
#define EXIT_READ_DR7           0x027
#define EXIT_EXCP_BP            0x043
#define EXIT_EXCP_OF            0x044
#define EXIT_EXCP_BR            0x045
#define EXIT_EXCP_UD            0x046
#define EXIT_INTR               0x060
#define EXIT_NMI                0x061
#define EXIT_RDTSC              0x06e
#define EXIT_CPUID              0x072
#define EXIT_SWINT              0x075
#define EXIT_INVD               0x076
#define EXIT_PAUSE              0x077
#define EXIT_HLT                0x078
#define EXIT_INVLPG             0x079
#define EXIT_IOIO               0x07b
#define EXIT_MSR                0x07c
#define EXIT_SHUTDOWN           0x07f
#define EXIT_VMRUN              0x080
#define EXIT_VMMCALL            0x081
#define EXIT_VMLOAD             0x082
#define EXIT_VMSAVE             0x083
#define EXIT_STGI               0x084
#define EXIT_CLGI               0x085
#define EXIT_WBINVD             0x089
#define EXIT_NPF                0x400
#define EXIT_INVALID            0xffffffffffffffffull

/* intercept vectors 3 and 4 (offsets 0Ch, 10h) as one 64-bit word */
#define INTERCEPT(exit)         (1ull << ((exit) - 0x060))

/* EVENTINJ and EXITINTINFO (APM vol. 2, 15.20, Figure 15-3) */
#define EVTINJ_VEC_MASK         0xffu
#define EVTINJ_TYPE_MASK        (7u << 8)
#define EVTINJ_INTR             (0u << 8)
#define EVTINJ_NMI              (2u << 8)
#define EVTINJ_EXCEPTION        (3u << 8)
#define EVTINJ_SOFT_INT         (4u << 8)
#define EVTINJ_EV               (1u << 11)
#define EVTINJ_VALID            (1u << 31)

/* segment attributes in VMCB form (APM vol. 2, 15.5.1) */
#define ATTR_CODE64             0x0a9b
#define ATTR_DATA               0x0c93

/* CPUID Fn8000_000A_EDX */
#define SVM_FEATURE_NPT         (1u << 0)
#define SVM_FEATURE_LBRV        (1u << 1)
#define SVM_FEATURE_NRIPS       (1u << 3)

static inline void vmcb_w8(uint8_t *vmcb, unsigned off, uint8_t v)
{
    *(volatile uint8_t *)(vmcb + off) = v;    /* read by VMRUN */
}

static inline void vmcb_w16(uint8_t *vmcb, unsigned off, uint16_t v)
{
    *(volatile uint16_t *)(vmcb + off) = v;   /* read by VMRUN */
}

static inline void vmcb_w32(uint8_t *vmcb, unsigned off, uint32_t v)
{
    *(volatile uint32_t *)(vmcb + off) = v;   /* read by VMRUN */
}

static inline void vmcb_w64(uint8_t *vmcb, unsigned off, uint64_t v)
{
    *(volatile uint64_t *)(vmcb + off) = v;   /* read by VMRUN */
}

static inline uint32_t vmcb_r32(const uint8_t *vmcb, unsigned off)
{
    return *(const volatile uint32_t *)(vmcb + off);  /* #VMEXIT writes */
}

static inline uint64_t vmcb_r64(const uint8_t *vmcb, unsigned off)
{
    return *(const volatile uint64_t *)(vmcb + off);  /* #VMEXIT writes */
}

/* svm-lib.c */
/*
 * Check CPUID for SVM; if present, fill in Fn8000_000A (a, b, d) and
 * return true.
 */
bool svm_probe(uint32_t *rev, uint32_t *asids, uint32_t *features);
/* Set EFER.SVME and the host save area. */
void svm_enable(void *hsave);
/*
 * Load L2's save area with L1's own state (flat segments, L1's GDT,
 * control registers and EFER), RFLAGS 0x2, no event to inject.  The
 * caller sets RIP, RSP and IDTR.
 */
void svm_vmcb_mirror_l1(uint8_t *vmcb);
/* CLGI; VMRUN; STGI.  L2 clobbers every register but RAX and RSP. */
void svm_vmrun(uint8_t *vmcb);
/*
 * L2's general registers that the VMCB does not hold (RAX and RSP it
 * does): a hypervisor that resumes L2 after an exit L2 did not ask for
 * must give them back.  Offsets are used by svm_vmrun_regs().
 */
typedef struct SvmGuestRegs {
    uint64_t rbx, rcx, rdx, rsi, rdi, rbp;
    uint64_t r8, r9, r10, r11, r12, r13, r14, r15;
} SvmGuestRegs;
/* svm_vmrun() with L2's registers loaded from and saved to *regs */
void svm_vmrun_regs(uint8_t *vmcb, SvmGuestRegs *regs);

#endif
