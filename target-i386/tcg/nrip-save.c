/*
 * SVM NRIP save for TCG system emulation (qemu-nested-kvm fork)
 *
 * AMD64 Architecture Programmer's Manual vol. 2, 15.7.1 "State Saved on
 * Exit": with CPUID Fn8000_000A_EDX[NRIPS], #VMEXIT saves the next
 * sequential instruction pointer (nRIP) at VMCB offset C8h "on all
 * #VMEXITs that are due to instruction intercepts, as defined in Section
 * 15.9, as well as MSR and IOIO intercepts and exceptions caused by the
 * INT3, INTO, and BOUND instructions.  For all other intercepts, nRIP is
 * reset to zero."  15.20 "Event Injection": software interrupts can only
 * be injected properly with NextRIP, which is then the return address.
 *
 * TCG checks intercepts in helpers, where cpu_restore_state() gives the
 * start of the instruction but not its length.  The translator therefore
 * stores the next sequential EIP of every instruction it translates in SVM
 * guest mode (HF_GUEST_MASK, part of the TB flags) into
 * env->nrip_next_eip when NRIPS is exposed; cpu_vmexit() copies it here.
 *
 * Copyright (c) 2026 qemu-nested-kvm contributors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "cpu.h"
#include "nrip-save.h"

/* Exit codes from APM Table 15-7 and Appendix C that QEMU's svm.h lacks */
#define SVM_EXIT_MWAIT_COND         0x08c
#define SVM_EXIT_RDPRU              0x08e
#define SVM_EXIT_INVLPGB            0x0a0
#define SVM_EXIT_INVLPGB_ILLEGAL    0x0a1
#define SVM_EXIT_INVPCID            0x0a2
#define SVM_EXIT_TLBSYNC            0x0a4
#define SVM_EXIT_IDLE_HLT           0x0a6

/* The VMCB's nRIP field, C8h (APM vol. 2, Table B-1) */
static hwaddr nrip_save_vmcb_next_rip_addr(CPUX86State *env)
{
    return env->vm_vmcb + offsetof(struct vmcb, control.next_rip);
}

/* CPUID Fn8000_000A_EDX[NRIPS] is exposed to the guest. */
static bool nrip_save_enabled(CPUX86State *env)
{
    return env->features[FEAT_SVM] & CPUID_SVM_NRIPSAVE;
}

/*
 * True for the exit codes whose #VMEXIT saves nRIP (APM vol. 2, 15.7.1):
 * the instruction intercepts of 15.9, IOIO, MSR, and the #BP, #OF and #BR
 * exception intercepts (raised only by INT3, INTO and BOUND).
 */
static bool nrip_save_exit_saves_nrip(uint64_t exit_code)
{
    switch (exit_code) {
    /* 15.9: MOV to/from CRn (also LMSW, SMSW, CLTS) and DRn */
    case SVM_EXIT_READ_CR0 ... SVM_EXIT_READ_CR0 + 15:
    case SVM_EXIT_WRITE_CR0 ... SVM_EXIT_WRITE_CR0 + 15:
    case SVM_EXIT_READ_DR0 ... SVM_EXIT_READ_DR0 + 15:
    case SVM_EXIT_WRITE_DR0 ... SVM_EXIT_WRITE_DR0 + 15:
    /* 15.12.4-6: only INT3, INTO and BOUND raise #BP, #OF and #BR */
    case SVM_EXIT_EXCP_BASE + EXCP03_INT3:
    case SVM_EXIT_EXCP_BASE + EXCP04_INTO:
    case SVM_EXIT_EXCP_BASE + EXCP05_BOUND:
    /*
     * 15.9 (selective CR0 write, IDTR/GDTR/LDTR/TR, RDTSC, RDPMC, PUSHF,
     * POPF, CPUID, RSM, IRET, INTn, INVD, PAUSE, HLT, INVLPG, INVLPGA),
     * 15.10 IOIO and 15.11 MSR: 0x65 to 0x7c without a gap.
     */
    case SVM_EXIT_CR0_SEL_WRITE ... SVM_EXIT_MSR:
    /*
     * 15.9: VMRUN, VMMCALL, VMLOAD, VMSAVE, STGI, CLGI, SKINIT, RDTSCP,
     * ICEBP, WBINVD, MONITOR, MWAIT, MWAIT (conditional), XSETBV, RDPRU.
     */
    case SVM_EXIT_VMRUN ... SVM_EXIT_RDPRU:
    case SVM_EXIT_INVLPGB:
    case SVM_EXIT_INVLPGB_ILLEGAL:
    case SVM_EXIT_INVPCID:
    case SVM_EXIT_TLBSYNC:
    case SVM_EXIT_IDLE_HLT:
        return true;
    default:
        /*
         * INTR, NMI, SMI, INIT, VINTR, TASK_SWITCH, FERR_FREEZE, SHUTDOWN,
         * the other exception intercepts, NPF, VMEXIT_INVALID, ...
         */
        return false;
    }
}

void nrip_save_vmexit(CPUX86State *env, uint64_t exit_code)
{
    uint64_t nrip = 0;

    if (!nrip_save_enabled(env)) {
        return;
    }
    if (nrip_save_exit_saves_nrip(exit_code)) {
        nrip = env->nrip_next_eip;
    }
    x86_stq_phys(env_cpu(env), nrip_save_vmcb_next_rip_addr(env), nrip);
}

static target_ulong nrip_save_vmcb_next_rip(CPUX86State *env)
{
    return x86_ldq_phys(env_cpu(env), nrip_save_vmcb_next_rip_addr(env));
}

target_ulong nrip_save_soft_int_return(CPUX86State *env)
{
    if (!nrip_save_enabled(env)) {
        return env->eip;
    }
    return nrip_save_vmcb_next_rip(env);
}

void nrip_save_inject_exception(CPUX86State *env, int vector)
{
    if (!nrip_save_enabled(env) ||
        (vector != EXCP03_INT3 && vector != EXCP04_INTO)) {
        return;
    }
    env->exception_is_int = 1;
    env->exception_next_eip = nrip_save_vmcb_next_rip(env);
}
