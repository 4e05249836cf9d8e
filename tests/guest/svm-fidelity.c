/*
 * nkvm-guest: "svm-fidelity" scenario, SVM behaviours the lab relies on
 *
 * The lab's L0 is TCG, so every nested result is only as true as TCG's
 * SVM.  Each case here is one place where TCG once differed from the AMD
 * APM (vol. 2); the guest is a minimal SVM hypervisor again (see
 * svm-nrip.c), and each L2 snippet ends in VMMCALL, so an intercept that
 * does not fire shows up as exit code 81h at the snippet's end.
 *
 *  - LMSW treats the selective CR0 write intercept as non-selective
 *    (15.9.2): it exits with 65h even when it only toggles CR0.MP;
 *  - MOV from CR3/CR4 checks the read intercept of that register, and
 *    only that one (15.9.1);
 *  - RDTSCP exits with 87h when intercepted (15.9, Table 15-7);
 *  - XSETBV raises #UD before its intercept when CR4.OSXSAVE is 0
 *    ("simple exceptions are checked before instruction intercepts",
 *    15.9), and exits with 8Dh when it is 1;
 *  - a VMRUN that fails its EVENTINJ check (an exception with vector 2,
 *    15.20) exits with VMEXIT_INVALID and leaves the guest's RIP and
 *    RFLAGS in the VMCB as they were; the next VMRUN injects from there;
 *  - a guest in legacy PAE paging without nested paging leaves its PDPTEs
 *    alone: they have no Accessed bit, bit 5 is reserved (5.2), and
 *    L1's KVM rejects a CR3 whose PDPTEs have it set;
 *  - at CPL 3 with CR0.AM and RFLAGS.AC, a data access not aligned to
 *    its size raises #AC (8.2.18), seen here as exit 51h when the
 *    exception is intercepted; the store it stopped did not happen;
 *  - with DebugCtl.LBR set, LastBranchFromIP/ToIP hold the source and
 *    target of the last branch (13.1.1, "Control-Transfer Recording
 *    MSRs"), and DebugCtl reads back with LBR set;
 *  - with LBR virtualization (VMCB offset B8h bit 0, 15.23), VMRUN loads
 *    L2's DebugCtl and LBR MSRs from the VMCB, and #VMEXIT saves L2's
 *    there and restores L1's.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "svm-lib.h"
#include "svm-fidelity.h"

#define EXIT_READ_CR3           0x003
#define EXIT_READ_CR4           0x004
#define EXIT_CR0_SEL_WRITE      0x065
#define EXIT_RDTSCP             0x087
#define EXIT_XSETBV             0x08d
#define EXIT_EXCP_AC            0x051

#define CR0_MP                  (1ull << 1)
#define CR0_AM                  (1ull << 18)
#define RFLAGS_AC               (1ull << 18)
#define ATTR_USER_CODE64        0x0afb  /* G, L, P, DPL 3, code exec/read */
#define ATTR_USER_DATA          0x0cf3  /* G, B, P, DPL 3, data read/write */
#define ATTR_CODE32             0x0c9b  /* G, D, P, S, code exec/read */
#define CR4_OSXSAVE             (1ull << 18)
#define RFLAGS_FIXED            0x2ull

#define MSR_DEBUGCTL            0x1d9
#define MSR_LASTBRANCHFROMIP    0x1db
#define MSR_LASTBRANCHTOIP      0x1dc
#define DEBUGCTL_LBR            (1ull << 0)
#define LBRV_ENABLE             (1ull << 0)

#define CPUID_8000_0001_EDX_RDTSCP  (1u << 27)
#define CPUID_1_ECX_XSAVE           (1u << 26)

static uint8_t vmcb[PAGE_SIZE] __attribute__((aligned(PAGE_SIZE)));
static uint8_t hsave[PAGE_SIZE] __attribute__((aligned(PAGE_SIZE)));
static uint8_t iopm[3 * PAGE_SIZE] __attribute__((aligned(PAGE_SIZE)));
static uint8_t msrpm[2 * PAGE_SIZE] __attribute__((aligned(PAGE_SIZE)));
static uint8_t l2_stack[2 * PAGE_SIZE] __attribute__((aligned(PAGE_SIZE)));
static IdtGate l2_idt[256] __attribute__((aligned(PAGE_SIZE)));

/* legacy PAE: 4 PDPTEs (32-byte aligned CR3) and one page directory */
static uint64_t pae_pdpt[4] __attribute__((aligned(32)));
static uint64_t pae_pd[512] __attribute__((aligned(PAGE_SIZE)));

/* L2 at CPL 3 needs user pages: the low 1 GiB in 2 MiB pages, U set */
static uint64_t user_pml4[512] __attribute__((aligned(PAGE_SIZE)));
static uint64_t user_pdpt[512] __attribute__((aligned(PAGE_SIZE)));
static uint64_t user_pd[512] __attribute__((aligned(PAGE_SIZE)));

static void (*check)(const char *desc, uint64_t got, uint64_t expected);

/*
 * A fresh VMCB for L2 at rip: L1's state, only VMRUN and VMMCALL
 * intercepted, then the case's own intercepts.
 */
static void vmcb_fresh(const char *rip, uint16_t cr_read,
                       uint32_t exceptions, uint64_t intercepts)
{
    memset(vmcb, 0, sizeof(vmcb));
    vmcb_w64(vmcb, VMCB_IOPM_BASE, (uint64_t)iopm);
    vmcb_w64(vmcb, VMCB_MSRPM_BASE, (uint64_t)msrpm);
    vmcb_w32(vmcb, VMCB_ASID, 1);
    vmcb_w16(vmcb, VMCB_CR_READ, cr_read);
    vmcb_w32(vmcb, VMCB_EXCEPTIONS, exceptions);
    vmcb_w64(vmcb, VMCB_INTERCEPT, INTERCEPT(EXIT_VMRUN) |
             INTERCEPT(EXIT_VMMCALL) | intercepts);
    svm_vmcb_mirror_l1(vmcb);
    vmcb_w32(vmcb, VMCB_IDTR + 4, sizeof(l2_idt) - 1);
    vmcb_w64(vmcb, VMCB_IDTR + 8, (uint64_t)l2_idt);
    vmcb_w64(vmcb, VMCB_RIP, (uint64_t)rip);
    vmcb_w64(vmcb, VMCB_RSP, (uint64_t)(l2_stack + sizeof(l2_stack)));
}

/* Run L2; check the exit code and the RIP it was taken at. */
static void expect_exit(const char *what, uint64_t code, const char *at)
{
    svm_vmrun(vmcb);
    check_named(check, what, "exit code",
                vmcb_r64(vmcb, VMCB_EXIT_CODE), code);
    check_named(check, what, "saved RIP", vmcb_r64(vmcb, VMCB_RIP),
                (uint64_t)at);
}

static void run_lmsw(void)
{
    uint64_t cr0;

    vmcb_fresh(svm_fid_lmsw, 0, 0, INTERCEPT(EXIT_CR0_SEL_WRITE));
    cr0 = vmcb_r64(vmcb, VMCB_CR0);
    expect_exit("lmsw toggling only CR0.MP, selective CR0 write "
                "intercepted", EXIT_CR0_SEL_WRITE, svm_fid_lmsw_insn);
    check("lmsw: CR0 in the VMCB is unchanged",
          vmcb_r64(vmcb, VMCB_CR0), cr0);

    /* negative control: MOV to CR0 is selective, MP is not in its set */
    vmcb_fresh(svm_fid_movcr0, 0, 0, INTERCEPT(EXIT_CR0_SEL_WRITE));
    expect_exit("mov to cr0 toggling only CR0.MP, selective CR0 write "
                "intercepted", EXIT_VMMCALL, svm_fid_movcr0_end);
    check("mov to cr0: the guest's CR0.MP changed",
          (vmcb_r64(vmcb, VMCB_CR0) ^ cr0) & CR0_MP, CR0_MP);
}

static void run_cr_reads(void)
{
    vmcb_fresh(svm_fid_cr_reads, 1 << 3, 0, 0);
    expect_exit("mov from cr3, CR3 read intercepted", EXIT_READ_CR3,
                svm_fid_movfromcr3);

    vmcb_fresh(svm_fid_cr_reads, 1 << 4, 0, 0);
    expect_exit("mov from cr4, CR4 read intercepted", EXIT_READ_CR4,
                svm_fid_movfromcr4);

    /* only CR0 reads intercepted: CR3 and CR4 reads must run through */
    vmcb_fresh(svm_fid_cr_reads, 1 << 0, 0, 0);
    expect_exit("mov from cr3 and cr4, only CR0 reads intercepted",
                EXIT_VMMCALL, svm_fid_cr_reads_end);
}

static void run_rdtscp(void)
{
    uint32_t a, b, c, d;

    cpuid(0x80000001, &a, &b, &c, &d);
    if (!(d & CPUID_8000_0001_EDX_RDTSCP)) {
        check("CPUID Fn8000_0001_EDX[RDTSCP] is set", 0, 1);
        return;
    }
    vmcb_fresh(svm_fid_rdtscp, 0, 0, INTERCEPT(EXIT_RDTSCP));
    expect_exit("rdtscp, RDTSCP intercepted", EXIT_RDTSCP,
                svm_fid_rdtscp);
}

static void run_xsetbv(void)
{
    uint32_t a, b, c, d;
    uint64_t cr4;

    cpuid(1, &a, &b, &c, &d);
    if (!(c & CPUID_1_ECX_XSAVE)) {
        check("CPUID Fn0000_0001_ECX[XSAVE] is set", 0, 1);
        return;
    }
    vmcb_fresh(svm_fid_xsetbv, 0, 1 << 6, INTERCEPT(EXIT_XSETBV));
    cr4 = vmcb_r64(vmcb, VMCB_CR4) & ~CR4_OSXSAVE;
    vmcb_w64(vmcb, VMCB_CR4, cr4);
    expect_exit("xsetbv with CR4.OSXSAVE=0, XSETBV and #UD intercepted",
                EXIT_EXCP_UD, svm_fid_xsetbv_insn);

    vmcb_fresh(svm_fid_xsetbv, 0, 1 << 6, INTERCEPT(EXIT_XSETBV));
    vmcb_w64(vmcb, VMCB_CR4, cr4 | CR4_OSXSAVE);
    expect_exit("xsetbv with CR4.OSXSAVE=1, XSETBV and #UD intercepted",
                EXIT_XSETBV, svm_fid_xsetbv_insn);
}

static void run_bad_eventinj(void)
{
    const uint64_t rflags = RFLAGS_FIXED | (1 << 0) | (1 << 6);  /* CF, ZF */

    vmcb_fresh(svm_fid_inject, 0, 0, 0);
    vmcb_w64(vmcb, VMCB_RFLAGS, rflags);
    vmcb_w32(vmcb, VMCB_EVENT_INJ, EVTINJ_VALID | EVTINJ_EXCEPTION | 2);
    svm_vmrun(vmcb);
    check("EVENTINJ exception vector 2: exit code is VMEXIT_INVALID",
          vmcb_r64(vmcb, VMCB_EXIT_CODE), EXIT_INVALID);
    check("EVENTINJ exception vector 2: saved RIP is the guest's",
          vmcb_r64(vmcb, VMCB_RIP), (uint64_t)svm_fid_inject);
    check("EVENTINJ exception vector 2: saved RFLAGS are the guest's",
          vmcb_r64(vmcb, VMCB_RFLAGS), rflags);

    /* the same VMCB, now with a valid #DE: it is delivered at that RIP */
    svm_fid_pushed_rip = 0;
    vmcb_w32(vmcb, VMCB_EVENT_INJ, EVTINJ_VALID | EVTINJ_EXCEPTION | 0);
    expect_exit("then EVENTINJ #DE: L2's handler runs", EXIT_VMMCALL,
                svm_fid_handler_vmmcall);
    check("then EVENTINJ #DE: pushed RIP is the guest's",
          svm_fid_pushed_rip, (uint64_t)svm_fid_inject);
}

static void run_pae_pdpte(void)
{
    const uint64_t pdpte = (uint64_t)pae_pd | 1;   /* P only */
    unsigned i;

    for (i = 0; i < 512; i++) {     /* the low 1 GiB, 2 MiB pages */
        pae_pd[i] = ((uint64_t)i << 21) | 0x83;    /* PS, RW, P */
    }
    pae_pdpt[0] = pdpte;
    pae_pdpt[1] = pae_pdpt[2] = pae_pdpt[3] = 0;

    vmcb_fresh(svm_fid_pae32, 0, (1 << 6) | (1 << 13) | (1 << 14),
               INTERCEPT(EXIT_SHUTDOWN));
    /* 32-bit protected mode, paging with PAE, no long mode, no NPT */
    vmcb_w16(vmcb, VMCB_CS, GDT_CODE32);
    vmcb_w16(vmcb, VMCB_CS + 2, ATTR_CODE32);
    vmcb_w64(vmcb, VMCB_EFER, EFER_SVME);
    vmcb_w64(vmcb, VMCB_CR0, (uint32_t)(CR0_PE | CR0_PG));
    vmcb_w64(vmcb, VMCB_CR4, (uint32_t)CR4_PAE);
    vmcb_w64(vmcb, VMCB_CR3, (uint64_t)pae_pdpt);
    expect_exit("legacy PAE guest without NPT runs to its VMMCALL",
                EXIT_VMMCALL, svm_fid_pae32_end);
    check("legacy PAE guest: its PDPTE is unchanged (no Accessed bit)",
          pae_pdpt[0], pdpte);
}

/*
 * L2 at CPL 3 on its own page tables, with CR0.AM and RFLAGS.AC as given
 * and #AC intercepted.
 */
static void vmcb_user(const char *rip, bool am, bool ac)
{
    const uint64_t user_pte = PTE_P | PTE_W | PTE_U;
    unsigned i;

    for (i = 0; i < 512; i++) {
        user_pd[i] = ((uint64_t)i << 21) | PTE_PS | user_pte;
    }
    user_pdpt[0] = (uint64_t)user_pd | user_pte;
    user_pml4[0] = (uint64_t)user_pdpt | user_pte;

    vmcb_fresh(rip, 0, 1 << 17, 0);
    vmcb_w64(vmcb, VMCB_CR3, (uint64_t)user_pml4);
    vmcb_w16(vmcb, VMCB_CS, GDT_CODE64 | 3);
    vmcb_w16(vmcb, VMCB_CS + 2, ATTR_USER_CODE64);
    vmcb_w16(vmcb, VMCB_SS, GDT_DATA | 3);
    vmcb_w16(vmcb, VMCB_SS + 2, ATTR_USER_DATA);
    vmcb_w8(vmcb, VMCB_CPL, 3);
    vmcb_w64(vmcb, VMCB_CR0, (vmcb_r64(vmcb, VMCB_CR0) & ~CR0_AM) |
             (am ? CR0_AM : 0));
    vmcb_w64(vmcb, VMCB_RFLAGS, RFLAGS_FIXED | (ac ? RFLAGS_AC : 0));
}

static void run_alignment_check(void)
{
    svm_fid_ac_buf[0] = svm_fid_ac_buf[1] = 0;
    vmcb_user(svm_fid_ac_store, true, true);
    expect_exit("misaligned 8-byte store at CPL 3, CR0.AM and RFLAGS.AC, "
                "#AC intercepted", EXIT_EXCP_AC, svm_fid_ac_store_insn);
    check("#AC: the misaligned store did not happen",
          svm_fid_ac_buf[0] | svm_fid_ac_buf[1], 0);

    vmcb_user(svm_fid_ac_load, true, true);
    expect_exit("misaligned 4-byte load at CPL 3, CR0.AM and RFLAGS.AC, "
                "#AC intercepted", EXIT_EXCP_AC, svm_fid_ac_load_insn);

    /* negative controls: aligned and byte accesses, then AC or AM clear */
    vmcb_user(svm_fid_ac_aligned, true, true);
    expect_exit("aligned and byte accesses at CPL 3, CR0.AM and RFLAGS.AC",
                EXIT_VMMCALL, svm_fid_ac_aligned_end);
    vmcb_user(svm_fid_ac_store, true, false);
    expect_exit("misaligned store at CPL 3, CR0.AM, RFLAGS.AC clear",
                EXIT_VMMCALL, svm_fid_ac_store_end);
    vmcb_user(svm_fid_ac_store, false, true);
    expect_exit("misaligned store at CPL 3, RFLAGS.AC, CR0.AM clear",
                EXIT_VMMCALL, svm_fid_ac_store_end);
}

/* L1's own last branch: one snippet per branch kind */
static void lbr_branch(const char *what, uint64_t (*snippet)(void),
                       const char *from, const char *to)
{
    check_named(check, what, "DebugCtl reads back with LBR set",
                snippet(), DEBUGCTL_LBR);
    check_named(check, what, "LastBranchFromIP is the branch",
                rdmsr(MSR_LASTBRANCHFROMIP), (uint64_t)from);
    check_named(check, what, "LastBranchToIP is its target",
                rdmsr(MSR_LASTBRANCHTOIP), (uint64_t)to);
}

static void run_lbr(void)
{
    lbr_branch("lbr jmp", svm_fid_lbr_jmp, svm_fid_lbr_jmp_from,
               svm_fid_lbr_jmp_to);
    lbr_branch("lbr taken jz", svm_fid_lbr_jcc, svm_fid_lbr_jcc_from,
               svm_fid_lbr_jcc_to);
    lbr_branch("lbr ret", svm_fid_lbr_ret, svm_fid_lbr_ret_from,
               svm_fid_lbr_ret_to);
    check("lbr: DebugCtl reads 0 once cleared",
          rdmsr(MSR_DEBUGCTL), 0);
}

/*
 * L2 with LBR virtualization and the given DebugCtl; the VMCB's
 * LastBranchFromIP/ToIP are markers that L2 must see.  L1 runs it with
 * DebugCtl.LBR set, after a branch of its own.
 */
static void lbrv_run(const char *what, uint64_t dbgctl)
{
    const uint64_t from_marker = 0x1000f, to_marker = 0x2000f;
    const bool on = dbgctl & DEBUGCTL_LBR;
    uint64_t host_dbgctl;

    vmcb_fresh(svm_fid_lbrv_guest, 0, 0, 0);
    vmcb_w64(vmcb, VMCB_VIRT_EXT, LBRV_ENABLE);
    vmcb_w64(vmcb, VMCB_DBGCTL, dbgctl);
    vmcb_w64(vmcb, VMCB_BR_FROM, from_marker);
    vmcb_w64(vmcb, VMCB_BR_TO, to_marker);
    svm_fid_lbrv_seen[0] = svm_fid_lbrv_seen[1] = ~0ull;
    svm_fid_lbrv_seen[2] = ~0ull;
    host_dbgctl = svm_fid_lbrv_host(vmcb);

    check_named(check, what, "exit code",
                vmcb_r64(vmcb, VMCB_EXIT_CODE), EXIT_VMMCALL);
    check_named(check, what, "L2 starts with the VMCB's DebugCtl",
                svm_fid_lbrv_seen[0], dbgctl);
    check_named(check, what, "L2 starts with the VMCB's "
                "LastBranchFromIP", svm_fid_lbrv_seen[1], from_marker);
    check_named(check, what, "L2 starts with the VMCB's "
                "LastBranchToIP", svm_fid_lbrv_seen[2], to_marker);
    check_named(check, what, "#VMEXIT saves L2's DebugCtl",
                vmcb_r64(vmcb, VMCB_DBGCTL), dbgctl);
    check_named(check, what, "#VMEXIT saves L2's LastBranchFromIP",
                vmcb_r64(vmcb, VMCB_BR_FROM),
                on ? (uint64_t)svm_fid_lbrv_guest_from : from_marker);
    check_named(check, what, "#VMEXIT saves L2's LastBranchToIP",
                vmcb_r64(vmcb, VMCB_BR_TO),
                on ? (uint64_t)svm_fid_lbrv_guest_to : to_marker);
    check_named(check, what, "L1's DebugCtl is restored",
                host_dbgctl, DEBUGCTL_LBR);
    check_named(check, what, "L1's LastBranchFromIP is restored",
                rdmsr(MSR_LASTBRANCHFROMIP),
                (uint64_t)svm_fid_lbrv_host_from);
    check_named(check, what, "L1's LastBranchToIP is restored",
                rdmsr(MSR_LASTBRANCHTOIP),
                (uint64_t)svm_fid_lbrv_host_to);
}

static void run_lbrv(void)
{
    uint32_t rev, asids, features;

    svm_probe(&rev, &asids, &features);
    if (!(features & SVM_FEATURE_LBRV)) {
        check("CPUID Fn8000_000A_EDX[LbrVirt] is set", 0, 1);
        return;
    }
    lbrv_run("lbrv, L2 LBR on", DEBUGCTL_LBR);
    lbrv_run("lbrv, L2 LBR off", 0);
}

void scenario_svm_fidelity(void (*check_fn)(const char *, uint64_t,
                                            uint64_t))
{
    uint32_t rev, asids, features;
    unsigned v;

    check = check_fn;
    if (!svm_probe(&rev, &asids, &features)) {
        check("CPUID has SVM and leaf 0x8000000a", 0, 1);
        return;
    }
    svm_enable(hsave);
    memset(iopm, 0, sizeof(iopm));
    memset(msrpm, 0, sizeof(msrpm));
    for (v = 0; v < 256; v++) {
        idt_set_gate(&l2_idt[v], (uint64_t)svm_fid_handler);
    }

    run_lmsw();
    run_cr_reads();
    run_rdtscp();
    run_xsetbv();
    run_bad_eventinj();
    run_pae_pdpte();
    run_alignment_check();
    run_lbr();
    run_lbrv();
}

/* L2's snippets; each ends in VMMCALL (exit 81h); <name>_end labels it. */
asm(
    "   .text\n"
    "   .code64\n"
    "   .macro L name\n"
    "   .globl svm_fid_\\name\n"
    "svm_fid_\\name\\():\n"
    "   .endm\n"
    "   .balign 16\n"
    "   L lmsw\n"
    "   mov %cr0, %rax\n"
    "   xor $2, %eax\n"                 /* CR0.MP */
    "   L lmsw_insn\n"
    "   lmsw %ax\n"
    "   L lmsw_end\n"
    "   vmmcall\n"
    "   ud2\n"
    "   L movcr0\n"
    "   mov %cr0, %rax\n"
    "   xor $2, %eax\n"
    "   mov %rax, %cr0\n"
    "   L movcr0_end\n"
    "   vmmcall\n"
    "   ud2\n"
    "   L cr_reads\n"
    "   L movfromcr3\n"
    "   mov %cr3, %rax\n"
    "   L movfromcr4\n"
    "   mov %cr4, %rax\n"
    "   L cr_reads_end\n"
    "   vmmcall\n"
    "   ud2\n"
    "   L rdtscp\n"
    "   rdtscp\n"
    "   vmmcall\n"
    "   ud2\n"
    "   L xsetbv\n"
    "   xor %ecx, %ecx\n"
    "   xor %edx, %edx\n"
    "   mov $3, %eax\n"                 /* x87 and SSE */
    "   L xsetbv_insn\n"
    "   xsetbv\n"
    "   vmmcall\n"
    "   ud2\n"
    /* 32-bit code under legacy PAE paging */
    "   .code32\n"
    "   L pae32\n"
    "   mov $0x1234, %eax\n"
    "   L pae32_end\n"
    "   vmmcall\n"
    "   ud2\n"
    "   .code64\n"
    /* CPL 3: svm_fid_ac_buf is 16-byte aligned */
    "   L ac_store\n"
    "   mov $0x1122334455667788, %rax\n"
    "   L ac_store_insn\n"
    "   mov %rax, svm_fid_ac_buf+4(%rip)\n"
    "   L ac_store_end\n"
    "   vmmcall\n"
    "   ud2\n"
    "   L ac_load\n"
    "   L ac_load_insn\n"
    "   mov svm_fid_ac_buf+2(%rip), %eax\n"
    "   vmmcall\n"
    "   ud2\n"
    "   L ac_aligned\n"
    "   mov %rax, svm_fid_ac_buf+8(%rip)\n"
    "   mov %eax, svm_fid_ac_buf+4(%rip)\n"
    "   movw %ax, svm_fid_ac_buf+2(%rip)\n"
    "   movb %al, svm_fid_ac_buf+1(%rip)\n"
    "   push %rax\n"
    "   pop %rax\n"
    "   L ac_aligned_end\n"
    "   vmmcall\n"
    "   ud2\n"
    "   L inject\n"
    "   vmmcall\n"
    "   ud2\n"
    /* L2's handler for every vector: record the return RIP, exit */
    "   .balign 16\n"
    "   L handler\n"
    "   mov (%rsp), %rax\n"
    "   mov %rax, svm_fid_pushed_rip(%rip)\n"
    "   L handler_vmmcall\n"
    "   vmmcall\n"
    "   ud2\n"
    /*
     * DebugCtl.LBR: no branch between the one recorded and the WRMSR
     * that clears DebugCtl.LBR.  Each returns the DebugCtl read first.
     */
    "   .macro LBR_ON\n"
    "   mov $0x1d9, %ecx\n"
    "   mov $1, %eax\n"
    "   xor %edx, %edx\n"
    "   wrmsr\n"
    "   .endm\n"
    "   .macro LBR_OFF_RET\n"
    "   mov $0x1d9, %ecx\n"
    "   rdmsr\n"
    "   mov %eax, %r8d\n"
    "   xor %eax, %eax\n"
    "   xor %edx, %edx\n"
    "   wrmsr\n"
    "   mov %r8d, %eax\n"
    "   ret\n"
    "   .endm\n"
    "   .balign 16\n"
    "   L lbr_jmp\n"
    "   LBR_ON\n"
    "   L lbr_jmp_from\n"
    "   jmp svm_fid_lbr_jmp_to\n"
    "   ud2\n"
    "   L lbr_jmp_to\n"
    "   LBR_OFF_RET\n"
    "   L lbr_jcc\n"
    "   LBR_ON\n"
    "   xor %eax, %eax\n"              /* ZF=1 */
    "   L lbr_jcc_from\n"
    "   jz svm_fid_lbr_jcc_to\n"
    "   ud2\n"
    "   L lbr_jcc_to\n"
    "   LBR_OFF_RET\n"
    "   L lbr_ret\n"
    "   LBR_ON\n"
    "   call svm_fid_lbr_ret_from\n"
    "   L lbr_ret_to\n"
    "   LBR_OFF_RET\n"
    "   L lbr_ret_from\n"
    "   ret\n"
    "   .balign 16\n"
    "   L lbrv_host\n"
    "   LBR_ON\n"
    "   L lbrv_host_from\n"
    "   jmp svm_fid_lbrv_host_to\n"
    "   ud2\n"
    "   L lbrv_host_to\n"
    "   mov %rdi, %rax\n"
    "   clgi\n"
    "   vmrun\n"
    "   stgi\n"
    "   LBR_OFF_RET\n"
    /* L2: touches only RAX, RCX and RDX */
    "   L lbrv_guest\n"
    "   mov $0x1d9, %ecx\n"
    "   rdmsr\n"
    "   mov %eax, svm_fid_lbrv_seen(%rip)\n"
    "   mov %edx, svm_fid_lbrv_seen+4(%rip)\n"
    "   mov $0x1db, %ecx\n"
    "   rdmsr\n"
    "   mov %eax, svm_fid_lbrv_seen+8(%rip)\n"
    "   mov %edx, svm_fid_lbrv_seen+12(%rip)\n"
    "   mov $0x1dc, %ecx\n"
    "   rdmsr\n"
    "   mov %eax, svm_fid_lbrv_seen+16(%rip)\n"
    "   mov %edx, svm_fid_lbrv_seen+20(%rip)\n"
    "   L lbrv_guest_from\n"
    "   jmp svm_fid_lbrv_guest_to\n"
    "   ud2\n"
    "   L lbrv_guest_to\n"
    "   vmmcall\n"
    "   ud2\n"
    "   .data\n"
    "   .balign 8\n"
    "   .globl svm_fid_lbrv_seen\n"
    "svm_fid_lbrv_seen: .quad 0, 0, 0\n"
    "   .balign 8\n"
    "   .globl svm_fid_pushed_rip\n"
    "svm_fid_pushed_rip: .quad 0\n"
    "   .balign 16\n"
    "   .globl svm_fid_ac_buf\n"
    "svm_fid_ac_buf: .quad 0, 0\n"
    "   .text\n"
    "   .purgem L\n"
    "   .purgem LBR_ON\n"
    "   .purgem LBR_OFF_RET\n"
);
