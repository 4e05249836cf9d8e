/*
 * nkvm-guest: the torture's VMX back end (torture.c has the scenario)
 *
 * Events go in through the VM-entry interruption-information field,
 * error code and instruction length (Intel SDM Vol. 3C, 27.6.1), a
 * delivery cut short comes back in the IDT-vectoring information
 * (28.2.4), a soft event returns to RIP plus the instruction length,
 * and the window lives in EPT (29.3).  docs/vmx-torture.rst maps each
 * piece to its SVM twin in svm-torture.c.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "torture.h"

#define EPT_NEEDED      (EPT_CAP_WALK_4 | EPT_CAP_WB | EPT_CAP_2M | \
                         EPT_CAP_INVEPT | EPT_CAP_INVEPT_SINGLE)
/* the bits of interruption information that name the event (25.9.3) */
#define INTR_INFO_EVENT (INTR_INFO_VALID | INTR_INFO_DELIVER_CODE | \
                         INTR_TYPE_MASK | INTR_INFO_VECTOR_MASK)
#define VMX_RUN_FAILED  (1ull << 63)    /* in TortureExit.code */

static VmxCaps caps;
static uint64_t eptp;
static const char *setup_error;     /* set once by a vCPU that failed */

static bool vmx_torture_probe(void)
{
    if (!vmx_probe(&caps)) {
        return false;
    }
    kprintf("# torture: VMX basic 0x%lx, misc 0x%lx, EPT/VPID 0x%lx\n",
            caps.basic, caps.misc, caps.ept_vpid);
    if ((caps.ept_vpid & EPT_NEEDED) != EPT_NEEDED) {
        kprintf("# torture: no EPT with 4 levels, write-back, 2 MiB pages "
                "and single-context INVEPT\n");
        return false;
    }
    return true;
}

static uint32_t vmx_torture_encode(const EventKind *k)
{
    static const uint32_t type[] = {
        [EVC_EXT_INTR] = INTR_TYPE_EXT_INTR,
        [EVC_NMI] = INTR_TYPE_NMI,
        [EVC_HW_EXCEPTION] = INTR_TYPE_HARD_EXCEPTION,
        [EVC_SOFT_INTR] = INTR_TYPE_SOFT_INTR,
        [EVC_SOFT_EXCEPTION] = INTR_TYPE_SOFT_EXCEPTION,
    };

    return type[k->cls] | k->vector |
           (k->error_code ? INTR_INFO_DELIVER_CODE : 0) | INTR_INFO_VALID;
}

static uint64_t vmx_torture_npte(uint64_t pa, int level)
{
    return level == NPTE_TABLE ? pa | EPT_RWX :
           pa | EPT_RWX | EPT_MT_WB | (level == NPTE_2M ? EPT_LARGE : 0);
}

/*
 * External interrupts and NMIs always exit to L1, so that none of L1's
 * reaches L2's handlers (the SVM back end intercepts INTR only with
 * cross events, as V_INTR_MASKING then needs it).
 */
static const char *vmcs_setup(TortureCpu *c)
{
    const char *err;

    err = vmx_enable(&caps, c->index, c->hv.vmx.vmxon);
    if (!err) {
        err = vmx_vmcs_load(&caps, c->hv.vmx.vmcs);
    }
    if (!err && vmx_vmcs_setup(&caps, c->index, PIN_EXTINT_EXITING |
                               PIN_NMI_EXITING | PIN_VIRTUAL_NMIS, eptp)) {
        err = "a VM-execution, exit or entry control is not allowed";
    }
    return err;
}

static void vmx_torture_cpu_start(TortureCpu *c, uint64_t ncr3)
{
    const char *err;

    eptp = ncr3 | EPTP_WB_4LEVEL;
    err = vmcs_setup(c);
    if (err) {
        setup_error = err;
        torture_diag(c, "setup", err, 0, 0);
    }
}

static void vmx_torture_round_load(TortureCpu *c, const TortureRound *r)
{
    vmx_vmcs_guest_mirror_l1(c->index);
    vmwrite(VMCS_GUEST_GDTR_BASE, r->gdt);
    vmwrite(VMCS_GUEST_GDTR_LIMIT, r->gdt_limit);
    vmwrite(VMCS_GUEST_IDTR_BASE, r->idt);
    vmwrite(VMCS_GUEST_IDTR_LIMIT, PAGE_SIZE - 1);
    vmwrite(VMCS_GUEST_RSP, r->rsp);
    vmwrite(VMCS_GUEST_CR3, r->cr3);
    vmwrite(VMCS_GUEST_RIP, r->rip);
    /* an external interrupt is injected only with IF set (27.3.1.5) */
    if ((r->event & INTR_TYPE_MASK) == INTR_TYPE_EXT_INTR) {
        vmwrite(VMCS_GUEST_RFLAGS, 0x202);
    }
    vmwrite(VMCS_ENTRY_INTR_INFO, r->inject ? r->event : 0);
    vmwrite(VMCS_ENTRY_EXCEPTION_ERR, r->err);
    vmwrite(VMCS_ENTRY_INSN_LEN, r->insn_len);
    /* VMX keeps no CR2 for L2: it is L1's, set before the entry */
    asm volatile("mov %0, %%cr2" : : "r"(r->cr2) : "memory");
    memset(&c->hv.vmx.regs, 0, sizeof(c->hv.vmx.regs));
}

/*
 * L1 keeps IF clear while L2 runs: external-interrupt exiting does not
 * depend on it.  An IPI that ended L2's run is still pending in L1's
 * APIC (no acknowledge on exit) and is taken at STI; an NMI that ended
 * it was consumed by the exit (28.5.1), so L1 runs its own handler.
 */
static void take_l1_event(uint32_t reason)
{
    if (reason == EXIT_REASON_EXTINT) {
        asm volatile("sti; nop; cli" : : : "memory");
    } else {
        asm volatile("int $2" : : : "memory");
    }
}

static bool is_nmi_exit(uint32_t reason)
{
    uint32_t info = vmread(VMCS_EXIT_INTR_INFO);

    return reason == EXIT_REASON_EXCEPTION_NMI &&
           (info & (INTR_INFO_VALID | INTR_TYPE_MASK)) ==
           (INTR_INFO_VALID | INTR_TYPE_NMI);
}

static void vmx_torture_run(TortureCpu *c, TortureExit *e)
{
    int r = setup_error ? VMX_RUN_FAIL_INVALID :
            vmx_run(&c->hv.vmx.regs, c->hv.vmx.launched);
    uint32_t reason;

    memset(e, 0, sizeof(*e));
    if (r != VMX_RUN_EXIT) {
        e->what = TEXIT_OTHER;
        e->code = VMX_RUN_FAILED | (r == VMX_RUN_FAIL_VALID ?
                                    vmread(VMCS_INSN_ERROR) : 0xffff);
        return;
    }
    reason = vmread(VMCS_EXIT_REASON);
    e->code = reason;
    e->rip = vmread(VMCS_GUEST_RIP);
    if (reason & EXIT_REASON_ENTRY_FAILED) {
        e->what = TEXIT_OTHER;
        return;
    }
    c->hv.vmx.launched = true;
    e->gpa = vmread(VMCS_GUEST_PHYS_ADDR);
    e->eii = vmread(VMCS_IDT_VECTORING_INFO) & INTR_INFO_EVENT;
    e->eie = vmread(VMCS_IDT_VECTORING_ERR);
    e->insn_len = vmread(VMCS_EXIT_INSN_LEN);
    switch (reason & 0xffff) {
    case EXIT_REASON_VMCALL:
        e->what = TEXIT_HCALL;
        break;
    case EXIT_REASON_EPT_VIOLATION:
        e->what = TEXIT_NPF;
        break;
    case EXIT_REASON_EXTINT:
        e->what = TEXIT_CROSS;
        break;
    default:
        e->what = is_nmi_exit(reason) ? TEXIT_CROSS : TEXIT_OTHER;
        break;
    }
    if (e->what == TEXIT_CROSS) {
        take_l1_event(reason);
    }
}

/*
 * Re-inject what the IDT-vectoring information held, as a hypervisor
 * must (28.2.4): a soft event with the exit's instruction length, and
 * an NMI with L2's NMI blocking cleared, as the entry checks require
 * (27.3.1.5) and as the delivery never completed.
 */
static void vmx_torture_reinject(TortureCpu *c __attribute__((unused)),
                                 const TortureExit *e,
                                 const TortureRound *r __attribute__((unused)))
{
    bool valid = e->eii & INTR_INFO_VALID;

    vmwrite(VMCS_ENTRY_INTR_INFO, valid ? e->eii : 0);
    vmwrite(VMCS_ENTRY_EXCEPTION_ERR, e->eie);
    vmwrite(VMCS_ENTRY_INSN_LEN, e->insn_len);
    if (valid && (e->eii & INTR_TYPE_MASK) == INTR_TYPE_NMI) {
        vmwrite(VMCS_GUEST_INTERRUPTIBILITY,
                vmread(VMCS_GUEST_INTERRUPTIBILITY) & ~INTERRUPTIBILITY_NMI);
    }
}

static void vmx_torture_flush(TortureCpu *c __attribute__((unused)))
{
    if (!setup_error) {
        vmx_invept(eptp);
    }
}

/* RIP plus the VM-entry instruction length (27.6.1.1) */
static uint64_t vmx_torture_soft_return(const TortureRound *r)
{
    return r->rip + r->insn_len;
}

const TortureHv torture_vmx = {
    .name = "vmx",
    .probe = vmx_torture_probe,
    .hcall = { 0x0f, 0x01, 0xc1 },      /* VMCALL */
    .hcall_exit = EXIT_REASON_VMCALL,
    .encode = vmx_torture_encode,
    .npte = vmx_torture_npte,
    .cpu_start = vmx_torture_cpu_start,
    .round_load = vmx_torture_round_load,
    .run = vmx_torture_run,
    .reinject = vmx_torture_reinject,
    .flush = vmx_torture_flush,
    .soft_return = vmx_torture_soft_return,
};
