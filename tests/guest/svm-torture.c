/*
 * nkvm-guest: the torture's SVM back end (torture.c has the scenario)
 *
 * Events go in through EVENTINJ (AMD APM vol. 2, 15.20), a delivery cut
 * short comes back in EXITINTINFO (15.7.2), a soft event returns to
 * NextRIP, and the window lives in nested page tables (15.25).
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "torture.h"

/* Nested page table entries: user bit required (APM vol. 2, 15.25.5) */
#define NPT_RWX                 (PTE_P | PTE_W | PTE_U)
#define VMCB_INT_CTL            0x060
#define V_INTR_MASKING          (1u << 24)

static bool nrips;

static bool svm_torture_probe(void)
{
    uint32_t rev, asids, features;

    if (!svm_probe(&rev, &asids, &features)) {
        return false;
    }
    nrips = features & SVM_FEATURE_NRIPS;
    kprintf("# torture: SVM revision %u, %u ASIDs, Fn8000_000A_EDX 0x%x, "
            "NRIPS %s\n", rev, asids, features,
            nrips ? "present" : "absent");
    if (!(features & SVM_FEATURE_NPT)) {
        kprintf("# torture: no nested paging\n");
        return false;
    }
    return true;
}

static uint32_t svm_torture_encode(const EventKind *k)
{
    static const uint32_t type[] = {
        [EVC_EXT_INTR] = EVTINJ_INTR,
        [EVC_NMI] = EVTINJ_NMI,
        [EVC_HW_EXCEPTION] = EVTINJ_EXCEPTION,
        [EVC_SOFT_INTR] = EVTINJ_SOFT_INT,
        /* #BP and #OF as type 3 behave like INT3 and INTO (15.20) */
        [EVC_SOFT_EXCEPTION] = EVTINJ_EXCEPTION,
    };

    return type[k->cls] | k->vector | (k->error_code ? EVTINJ_EV : 0) |
           EVTINJ_VALID;
}

static uint64_t svm_torture_npte(uint64_t pa, int level)
{
    return pa | NPT_RWX | (level == NPTE_2M ? PTE_PS : 0);
}

static void svm_torture_cpu_start(TortureCpu *c, uint64_t ncr3)
{
    uint8_t *vmcb = c->hv.svm.vmcb;

    svm_enable(c->hv.svm.hsave);
    memset(vmcb, 0, PAGE_SIZE);
    vmcb_w32(vmcb, VMCB_ASID, 1);
    /*
     * NMI and SHUTDOWN keep stray events away from L2's handlers and a
     * broken L2 from taking L1 down; VMRUN is architecturally required.
     */
    vmcb_w64(vmcb, VMCB_INTERCEPT,
             INTERCEPT(EXIT_NMI) | INTERCEPT(EXIT_SHUTDOWN) |
             INTERCEPT(EXIT_HLT) | INTERCEPT(EXIT_VMRUN) |
             INTERCEPT(EXIT_VMMCALL) |
             (torture_cross_events() ? INTERCEPT(EXIT_INTR) : 0));
    /* Cross IPIs: L1's IF, not L2's, masks them (svm_torture_run()) */
    if (torture_cross_events()) {
        vmcb_w32(vmcb, VMCB_INT_CTL, V_INTR_MASKING);
    }
    vmcb_w64(vmcb, VMCB_NP_ENABLE, 1);
    vmcb_w64(vmcb, VMCB_N_CR3, ncr3);
}

static void svm_torture_round_load(TortureCpu *c, const TortureRound *r)
{
    uint8_t *vmcb = c->hv.svm.vmcb;

    svm_vmcb_mirror_l1(vmcb);
    vmcb_w32(vmcb, VMCB_GDTR + 4, r->gdt_limit);
    vmcb_w64(vmcb, VMCB_GDTR + 8, r->gdt);
    vmcb_w32(vmcb, VMCB_IDTR + 4, PAGE_SIZE - 1);
    vmcb_w64(vmcb, VMCB_IDTR + 8, r->idt);
    vmcb_w64(vmcb, VMCB_RSP, r->rsp);
    vmcb_w64(vmcb, VMCB_CR3, r->cr3);
    vmcb_w64(vmcb, VMCB_RIP, r->rip);
    vmcb_w64(vmcb, VMCB_CR2, r->cr2);
    vmcb_w64(vmcb, VMCB_G_PAT, 0x0007040600070406ull);
    vmcb_w64(vmcb, VMCB_NEXT_RIP, r->next_rip);
    vmcb_w32(vmcb, VMCB_EVENT_INJ, r->inject ? r->event : 0);
    vmcb_w32(vmcb, VMCB_EVENT_INJ_ERR, r->err);
    memset(&c->hv.svm.regs, 0, sizeof(c->hv.svm.regs));
}

/*
 * With cross events L1 runs L2 with IF set: under V_INTR_MASKING the
 * host's IF decides whether a physical interrupt ends L2's run (APM vol.
 * 2, 15.21.1), and L1 then takes it as soon as STGI opens GIF.
 */
static void svm_torture_run(TortureCpu *c, TortureExit *e)
{
    uint8_t *vmcb = c->hv.svm.vmcb;

    if (torture_cross_events()) {
        asm volatile("sti" : : : "memory");
    }
    svm_vmrun_regs(vmcb, &c->hv.svm.regs);
    if (torture_cross_events()) {
        asm volatile("cli" : : : "memory");
    }
    e->code = vmcb_r64(vmcb, VMCB_EXIT_CODE);
    e->rip = vmcb_r64(vmcb, VMCB_RIP);
    e->gpa = vmcb_r64(vmcb, VMCB_EXIT_INFO_2);
    e->eii = vmcb_r32(vmcb, VMCB_EXIT_INT_INFO);
    e->eie = vmcb_r32(vmcb, VMCB_EXIT_INT_INFO_ERR);
    e->insn_len = 0;
    e->what = e->code == EXIT_VMMCALL ? TEXIT_HCALL :
              e->code == EXIT_NPF ? TEXIT_NPF :
              e->code == EXIT_INTR || e->code == EXIT_NMI ? TEXIT_CROSS :
              TEXIT_OTHER;
}

/* Re-inject what EXITINTINFO held (nothing if it was not valid) */
static void svm_torture_reinject(TortureCpu *c, const TortureExit *e,
                                 const TortureRound *r)
{
    uint8_t *vmcb = c->hv.svm.vmcb;

    vmcb_w32(vmcb, VMCB_EVENT_INJ, e->eii & EVTINJ_VALID ? e->eii : 0);
    vmcb_w32(vmcb, VMCB_EVENT_INJ_ERR, e->eie);
    vmcb_w64(vmcb, VMCB_NEXT_RIP, r->next_rip);
}

static void svm_torture_flush(TortureCpu *c)
{
    vmcb_w8(c->hv.svm.vmcb, VMCB_TLB_CONTROL, 1);
}

/* Without NRIPS an injected soft event returns to RIP (15.20) */
static uint64_t svm_torture_soft_return(const TortureRound *r)
{
    return nrips ? r->next_rip : r->rip;
}

const TortureHv torture_svm = {
    .name = "svm",
    .probe = svm_torture_probe,
    .hcall = { 0x0f, 0x01, 0xd9 },      /* VMMCALL */
    .hcall_exit = EXIT_VMMCALL,
    .encode = svm_torture_encode,
    .npte = svm_torture_npte,
    .cpu_start = svm_torture_cpu_start,
    .round_load = svm_torture_round_load,
    .run = svm_torture_run,
    .reinject = svm_torture_reinject,
    .flush = svm_torture_flush,
    .soft_return = svm_torture_soft_return,
};
