/*
 * nkvm-guest: "torture" scenario, the guest as a test hypervisor that
 * injects every kind of event into its L2 while the pages that event
 * delivery touches keep moving
 *
 * L1 (this guest) enables SVM and nested paging and runs an L2 payload
 * (the assembly at the end of this file) that shares L1's code and
 * data but has its own page tables, IDT, GDT and stack.  Guest
 * physical memory of L2 is L1's, identity-mapped by L1's nested page
 * tables (2 MiB pages), except for a window of six 4 KiB pages that
 * hold L2's IDT, GDT, stack and page tables.  Every round:
 *
 *  - the window pages are pointed at fresh copies from a pool, and the
 *    TLB is flushed (TLB_CONTROL), so that a KVM below that shadows
 *    these tables has no mapping for them when L2 next touches them:
 *    delivering the injected event then takes an exit to that KVM in
 *    the middle of vectoring, the "event in flight" window;
 *  - in some rounds one window page is left unmapped, so that L1 itself
 *    gets the nested page fault during delivery; it checks EXITINTINFO
 *    (APM vol. 2, 15.7.2) and re-injects the event from it, as a
 *    hypervisor must;
 *  - one event is injected through EVENTINJ (15.20): INT n (type 4) and
 *    #BP / #OF (type 3, vectors 3 and 4, which behave like INT3 and
 *    INTO) with NextRIP deliberately far from RIP, an NMI, an external
 *    interrupt, #GP and #PF with error codes;
 *  - L2's handler counts its entries and records vector, error code,
 *    pushed RIP and CS, and CR2, then exits to L1 with VMMCALL, in most
 *    rounds without IRET (so an NMI handler never "returns"), in the
 *    others through IRET to the pushed RIP, where a VMMCALL waits;
 *  - after an NMI round, L1 sends itself an NMI through its local APIC
 *    and expects it at once: L1 never took an NMI, so its NMIs must not
 *    be blocked.  If it only arrives after an IRET, L1's NMI masking was
 *    corrupted (KVM does not migrate whether an NMI it re-injects came
 *    from L1, its nmi_l1_to_l2, and then treats it as its own).
 *
 * Every event is expected exactly once with the right vector, error
 * code and return RIP.  The scenario runs until "rounds=N" (command
 * line) rounds are done, or until it reads 'q' on COM1, prints a
 * progress line about once a second, and ends with one line
 * "torture-result {json}".  See docs/test-guest.rst.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "svm-lib.h"
#include "svm-torture.h"

/*
 * L2 guest-physical window mapped with 4 KiB nested pages, and the pool
 * of L1 pages behind it (NWIN * POOL_PAGES pages, 1.5 MiB).  Both lie
 * above the image and far below the 32 MiB the harness gives the VM.
 */
#define WINDOW_BASE             0x00800000ull
#define WIN_IDT                 0
#define WIN_GDT                 1
#define WIN_STACK               2
#define WIN_PML4                3       /* L2's own page tables */
#define WIN_PDPT                4
#define WIN_PD                  5
#define NWIN                    6
#define POOL_BASE               0x00a00000ull
#define POOL_PAGES              64      /* per window page */
#define WIN_GPA(w)              (WINDOW_BASE + (uint64_t)(w) * PAGE_SIZE)
#define POOL_PA(w, i) \
    (POOL_BASE + ((uint64_t)(w) * POOL_PAGES + (i)) * PAGE_SIZE)

/* Nested page table entries: user bit required (APM vol. 2, 15.25.5) */
#define NPT_RWX                 (PTE_P | PTE_W | 0x004)
#define PTE_PWT                 0x008
#define PTE_PCD                 0x010

#define MSR_APIC_BASE           0x1b
#define APIC_BASE_EXTD          (1u << 10)
#define APIC_ID                 0x020
#define APIC_SVR                0x0f0
#define APIC_ICR_LO             0x300
#define APIC_ICR_HI             0x310
#define MSR_X2APIC_ICR          0x830
#define ICR_NMI_ASSERT          0x4400  /* delivery mode NMI, level assert */

#define UART_RBR                0
#define UART_LSR                5
#define UART_LSR_DR             0x01

/* How long L1 waits for its own NMI, in loop iterations */
#define NMI_SPIN                200000
/* Rounds between looks at the UART and the clock */
#define POLL_ROUNDS             32
/* A progress line about every this many TSC ticks (about 1 s) */
#define PROGRESS_TSC            2000000000ull
#define MAX_DIAG                20

enum {
    EV_SOFT_INT, EV_INT3, EV_INTO, EV_NMI, EV_INTR, EV_GP, EV_PF,
    EV_TYPES
};

typedef struct EventKind {
    const char *name;
    uint32_t inj;       /* EVENTINJ without V */
    bool soft;          /* returns to NextRIP */
} EventKind;

static const EventKind kinds[EV_TYPES] = {
    [EV_SOFT_INT] = { "soft_int", EVTINJ_SOFT_INT | 0x82, true },
    [EV_INT3] = { "int3", EVTINJ_EXCEPTION | 3, true },
    [EV_INTO] = { "into", EVTINJ_EXCEPTION | 4, true },
    [EV_NMI] = { "nmi", EVTINJ_NMI | 2, false },
    [EV_INTR] = { "intr", EVTINJ_INTR | 0x41, false },
    [EV_GP] = { "gp", EVTINJ_EXCEPTION | EVTINJ_EV | 13, false },
    [EV_PF] = { "pf", EVTINJ_EXCEPTION | EVTINJ_EV | 14, false },
};

typedef struct Stats {
    uint64_t injected;
    uint64_t delivered;
    uint64_t lost;
    uint64_t duplicated;
    uint64_t wrong_vector;
    uint64_t wrong_rip;
    uint64_t wrong_error_code;
    uint64_t wrong_cr2;
    uint64_t bad_exitintinfo;
    uint64_t unexpected_exit;
    uint64_t l1_npf;            /* rounds with a nested #PF L1 handled */
} Stats;

static uint8_t vmcb[PAGE_SIZE] __attribute__((aligned(PAGE_SIZE)));
static uint8_t hsave[PAGE_SIZE] __attribute__((aligned(PAGE_SIZE)));
static uint64_t npt_pml4[512] __attribute__((aligned(PAGE_SIZE)));
static uint64_t npt_pdpt[512] __attribute__((aligned(PAGE_SIZE)));
static uint64_t npt_pd[512] __attribute__((aligned(PAGE_SIZE)));
static uint64_t npt_pt[512] __attribute__((aligned(PAGE_SIZE)));
static uint64_t apic_pd[512] __attribute__((aligned(PAGE_SIZE)));
static IdtGate l2_idt_image[256] __attribute__((aligned(PAGE_SIZE)));
static IdtGate l1_idt[256] __attribute__((aligned(PAGE_SIZE)));
static uint8_t l2_gdt_image[64];
static uint64_t l2_pml4_image[512] __attribute__((aligned(PAGE_SIZE)));
static uint64_t l2_pdpt_image[512] __attribute__((aligned(PAGE_SIZE)));
static uint64_t l2_pd_image[512] __attribute__((aligned(PAGE_SIZE)));

static Stats stats[EV_TYPES];
static uint64_t rounds, l1_nmi_checks, l1_nmi_corrupt, l1_nmi_lost;
static uint64_t l1_nmi_extra, diag_lines, nmi_vector_ignored;
static unsigned pool_idx[NWIN];
static uint64_t prng_state;
static uint16_t l2_gdt_limit;
static uint64_t drop_round = ~0ull;    /* "drop=N": lose round N on purpose */
static bool nrips, x2apic;
static volatile uint32_t *apic;     /* xAPIC registers, MMIO */

static uint64_t prng(void)
{
    /* xorshift64*: enough to vary the rounds, no quality needed */
    prng_state ^= prng_state >> 12;
    prng_state ^= prng_state << 25;
    prng_state ^= prng_state >> 27;
    return prng_state * 0x2545f4914f6cdd1dull;
}

static uint64_t cmdline_number(const char *cmdline, const char *key,
                               uint64_t dflt)
{
    size_t n = strlen(key);
    const char *p = cmdline;

    while (*p) {
        if ((p == cmdline || p[-1] == ' ') && !memcmp(p, key, n)) {
            uint64_t v = 0;

            for (p += n; *p >= '0' && *p <= '9'; p++) {
                v = v * 10 + (*p - '0');
            }
            return v;
        }
        p++;
    }
    return dflt;
}

static bool uart_quit_requested(void)
{
    bool quit = false;

    /* drain everything that arrived; any 'q' among it ends the run */
    while (inb(NKVM_COM1 + UART_LSR) & UART_LSR_DR) {
        if (inb(NKVM_COM1 + UART_RBR) == 'q') {
            quit = true;
        }
    }
    return quit;
}

/*
 * L1's own IDT for the run: main.c's, with an NMI handler that only
 * counts, since the checks below expect NMIs that main.c would reject.
 */
static void l1_idt_install(void)
{
    struct __attribute__((packed)) { uint16_t limit; uint64_t base; } d;

    asm volatile("sidt %0" : "=m"(d));
    memcpy(l1_idt, (void *)d.base,
           d.limit + 1u < sizeof(l1_idt) ? d.limit + 1u : sizeof(l1_idt));
    idt_set_gate(&l1_idt[2], (uint64_t)t_l1_nmi_entry);
    idt_load(l1_idt, 256);
}

/*
 * Map the local APIC (xAPIC MMIO; boot.S maps only the first GiB) with
 * a 2 MiB uncached page, or use x2APIC MSRs if the firmware chose that.
 */
static bool apic_init(void)
{
    uint64_t base = svm_rdmsr(MSR_APIC_BASE);
    uint64_t pa = base & 0x000ffffffffff000ull;
    uint64_t cr3, *pml4, *pdpt;

    if (base & APIC_BASE_EXTD) {
        x2apic = true;
        return true;
    }
    if (pa < (3ull << 30) || pa >= (4ull << 30)) {
        kprintf("# torture: local APIC at 0x%lx, not in 3-4 GiB\n", pa);
        return false;
    }
    asm volatile("mov %%cr3, %0" : "=r"(cr3));
    pml4 = (uint64_t *)(cr3 & 0x000ffffffffff000ull);
    pdpt = (uint64_t *)(pml4[0] & 0x000ffffffffff000ull);
    apic_pd[(pa >> 21) & 511] = (pa & ~0x1fffffull) | PTE_P | PTE_W |
                                PTE_PS | PTE_PWT | PTE_PCD;
    pdpt[3] = (uint64_t)apic_pd | PTE_P | PTE_W;
    asm volatile("mov %0, %%cr3" : : "r"(cr3) : "memory");
    apic = (volatile uint32_t *)pa;     /* MMIO registers */
    /* software-enable the APIC, in case the firmware left it off */
    apic[APIC_SVR / 4] |= 0x100;
    return true;
}

static void apic_self_nmi(void)
{
    if (x2apic) {
        uint64_t id = svm_rdmsr(0x802);

        svm_wrmsr(MSR_X2APIC_ICR, (id << 32) | ICR_NMI_ASSERT);
        return;
    }
    /*
     * Physical destination = own APIC ID rather than the "self"
     * shorthand, which the SDM allows only with fixed delivery.
     */
    apic[APIC_ICR_HI / 4] = apic[APIC_ID / 4] & 0xff000000u;
    apic[APIC_ICR_LO / 4] = ICR_NMI_ASSERT;
}

/* Return through IRET to the next instruction: ends any NMI blocking. */
static void iret_to_self(void)
{
    asm volatile("mov %%rsp, %%rax\n\t"
                 "pushq $0x10\n\t"
                 "pushq %%rax\n\t"
                 "pushfq\n\t"
                 "pushq $0x08\n\t"
                 "lea 1f(%%rip), %%rax\n\t"
                 "pushq %%rax\n\t"
                 "iretq\n"
                 "1:"
                 : : : "rax", "memory", "cc");
}

static bool wait_nmi(uint64_t before)
{
    unsigned i;

    for (i = 0; i < NMI_SPIN; i++) {
        if (t_l1_nmi_count != before) {
            return true;
        }
        asm volatile("pause");
    }
    return t_l1_nmi_count != before;
}

/*
 * After an L1->L2 NMI: L1 (GIF=1, in no NMI handler) sends itself an
 * NMI, which must be taken at once.
 */
static void l1_nmi_check(void)
{
    uint64_t before = t_l1_nmi_count;

    l1_nmi_checks++;
    apic_self_nmi();
    if (wait_nmi(before)) {
        if (t_l1_nmi_count != before + 1) {
            l1_nmi_extra++;
        }
        return;
    }
    l1_nmi_corrupt++;
    iret_to_self();
    if (!wait_nmi(before)) {
        l1_nmi_lost++;
    }
    if (diag_lines++ < MAX_DIAG) {
        kprintf("# torture: round %lu: L1's self-NMI blocked until IRET "
                "(%s)\n", rounds, t_l1_nmi_count != before ?
                "arrived after IRET" : "never arrived");
    }
}

static void npt_init(void)
{
    unsigned i;

    npt_pml4[0] = (uint64_t)npt_pdpt | NPT_RWX;
    npt_pdpt[0] = (uint64_t)npt_pd | NPT_RWX;
    for (i = 0; i < 512; i++) {
        npt_pd[i] = ((uint64_t)i << 21) | NPT_RWX | PTE_PS;
        npt_pt[i] = ((WINDOW_BASE & ~0x1fffffull) + (uint64_t)i * PAGE_SIZE)
                    | NPT_RWX;
    }
    npt_pd[WINDOW_BASE >> 21] = (uint64_t)npt_pt | NPT_RWX;
}

static void npt_set(unsigned w, uint64_t pa)
{
    /* walked by the CPU, never read back by C */
    volatile uint64_t *pte = &npt_pt[(WIN_GPA(w) >> 12) & 511];

    *pte = pa ? pa | NPT_RWX : 0;
}

/* Point each window page at a pool page other than the one it had. */
static void windows_remap(uint64_t rnd)
{
    unsigned w;

    for (w = 0; w < NWIN; w++) {
        unsigned step = 1 + (unsigned)((rnd >> (8 * w)) % (POOL_PAGES - 1));
        uint64_t pa;

        pool_idx[w] = (pool_idx[w] + step) % POOL_PAGES;
        pa = POOL_PA(w, pool_idx[w]);
        if (w == WIN_IDT) {
            memcpy((void *)pa, l2_idt_image, PAGE_SIZE);
        } else if (w == WIN_GDT) {
            memcpy((void *)pa, l2_gdt_image, sizeof(l2_gdt_image));
        } else if (w == WIN_PML4) {
            memcpy((void *)pa, l2_pml4_image, PAGE_SIZE);
        } else if (w == WIN_PDPT) {
            memcpy((void *)pa, l2_pdpt_image, PAGE_SIZE);
        } else if (w == WIN_PD) {
            memcpy((void *)pa, l2_pd_image, PAGE_SIZE);
        }
        npt_set(w, pa);
    }
}

static void vmcb_init(void)
{
    memset(vmcb, 0, sizeof(vmcb));
    vmcb_w32(vmcb, VMCB_ASID, 1);
    /*
     * NMI and SHUTDOWN keep stray events away from L2's handlers and a
     * broken L2 from taking L1 down; VMRUN is architecturally required.
     */
    vmcb_w64(vmcb, VMCB_INTERCEPT,
             INTERCEPT(EXIT_NMI) | INTERCEPT(EXIT_SHUTDOWN) |
             INTERCEPT(EXIT_HLT) | INTERCEPT(EXIT_VMRUN) |
             INTERCEPT(EXIT_VMMCALL));
    vmcb_w64(vmcb, VMCB_NP_ENABLE, 1);
    vmcb_w64(vmcb, VMCB_N_CR3, (uint64_t)npt_pml4);
}

static void diag(uint64_t round, const char *kind, const char *what,
                 uint64_t got, uint64_t expected)
{
    if (diag_lines++ < MAX_DIAG) {
        kprintf("# torture: round %lu %s: %s: got 0x%lx expected 0x%lx\n",
                round, kind, what, got, expected);
    }
}

static void run_round(void)
{
    unsigned k = rounds % EV_TYPES;
    const EventKind *kind = &kinds[k];
    Stats *st = &stats[k];
    uint64_t rnd = prng();
    bool use_iret = (rnd & 0x3000000) == 0;
    int unmap = ((rnd >> 26) & 7) == 0 ? (int)((rnd >> 29) % NWIN) : -1;
    uint32_t vec = kind->inj & EVTINJ_VEC_MASK;
    uint32_t event = kind->inj | EVTINJ_VALID;
    uint32_t err = 0;
    uint64_t rip, next_rip, cr2 = 0, expect_rip, code, exit_rip;
    uint32_t eii = 0, eie = 0;
    unsigned tries;

    if (k == EV_GP) {
        err = (uint32_t)(rnd >> 32) & 0xfff8;
    } else if (k == EV_PF) {
        err = (uint32_t)(rnd >> 32) & 0x17;
        /* a canonical address in the upper half, page offset kept */
        cr2 = 0xffff800000000000ull | ((rnd >> 7) & 0x7fffffffffffull);
    }
    if (kind->soft) {
        rip = (uint64_t)t_l2_soft_rip + k * T_L2_SLOT_SIZE;
        next_rip = (uint64_t)t_l2_soft_next + k * T_L2_SLOT_SIZE;
        /* without NRIPS an injected soft event returns to RIP (15.20) */
        expect_rip = nrips ? next_rip : rip;
    } else {
        rip = (uint64_t)t_l2_hw_rip;
        next_rip = (uint64_t)t_l2_poison;
        expect_rip = rip;
    }

    windows_remap(rnd);
    if (unmap >= 0) {
        npt_set(unmap, 0);
    }

    t_l2_entries = 0;
    t_l2_vec = t_l2_err = t_l2_rip = t_l2_cs = t_l2_cr2 = ~0ull;
    t_l2_use_iret = use_iret;

    svm_vmcb_mirror_l1(vmcb);
    vmcb_w32(vmcb, VMCB_GDTR + 4, l2_gdt_limit);
    vmcb_w64(vmcb, VMCB_GDTR + 8, WIN_GPA(WIN_GDT));
    vmcb_w32(vmcb, VMCB_IDTR + 4, PAGE_SIZE - 1);
    vmcb_w64(vmcb, VMCB_IDTR + 8, WIN_GPA(WIN_IDT));
    vmcb_w64(vmcb, VMCB_RSP, WIN_GPA(WIN_STACK) + PAGE_SIZE);
    vmcb_w64(vmcb, VMCB_CR3, WIN_GPA(WIN_PML4));
    vmcb_w64(vmcb, VMCB_RIP, rip);
    vmcb_w64(vmcb, VMCB_CR2, cr2);
    vmcb_w64(vmcb, VMCB_G_PAT, 0x0007040600070406ull);
    vmcb_w64(vmcb, VMCB_NEXT_RIP, next_rip);
    /* drop=N proves that a lost event is noticed: round N injects none */
    vmcb_w32(vmcb, VMCB_EVENT_INJ, rounds == drop_round ? 0 : event);
    vmcb_w32(vmcb, VMCB_EVENT_INJ_ERR, err);
    vmcb_w8(vmcb, VMCB_TLB_CONTROL, 1);

    st->injected++;
    for (tries = 0; ; tries++) {
        svm_vmrun(vmcb);
        code = vmcb_r64(vmcb, VMCB_EXIT_CODE);
        eii = vmcb_r32(vmcb, VMCB_EXIT_INT_INFO);
        eie = vmcb_r32(vmcb, VMCB_EXIT_INT_INFO_ERR);
        if (code != EXIT_NPF || unmap < 0 || tries > 0) {
            break;
        }
        /*
         * The nested #PF on the page left out: delivery was under way,
         * so EXITINTINFO must hold exactly the injected event.
         */
        st->l1_npf++;
        if ((vmcb_r64(vmcb, VMCB_EXIT_INFO_2) & ~0xfffull) !=
            WIN_GPA(unmap)) {
            st->unexpected_exit++;
            diag(rounds, kind->name, "nested #PF address",
                 vmcb_r64(vmcb, VMCB_EXIT_INFO_2), WIN_GPA(unmap));
        }
        if (k == EV_NMI && (eii & ~EVTINJ_VEC_MASK) ==
            (event & ~EVTINJ_VEC_MASK) && eii != event) {
            /*
             * The vector of an NMI is ignored (APM vol. 2, 15.20), and
             * KVM re-injects NMIs with vector 0; count it, it is legal.
             */
            nmi_vector_ignored++;
            eii = event;
        }
        if (eii != event || (eii & EVTINJ_EV && eie != err)) {
            st->bad_exitintinfo++;
            diag(rounds, kind->name, "EXITINTINFO on the nested #PF",
                 ((uint64_t)eie << 32) | eii, ((uint64_t)err << 32) | event);
        }
        /* map it and re-inject what was in flight, as a hypervisor must */
        npt_set(unmap, POOL_PA(unmap, pool_idx[unmap]));
        vmcb_w8(vmcb, VMCB_TLB_CONTROL, 1);
        vmcb_w32(vmcb, VMCB_EVENT_INJ, eii);
        vmcb_w32(vmcb, VMCB_EVENT_INJ_ERR, eie);
        vmcb_w64(vmcb, VMCB_NEXT_RIP, next_rip);
    }
    exit_rip = vmcb_r64(vmcb, VMCB_RIP);

    if (code != EXIT_VMMCALL) {
        st->unexpected_exit++;
        diag(rounds, kind->name, "exit code (RIP in the next line)", code,
             EXIT_VMMCALL);
        diag(rounds, kind->name, "exit RIP, EXITINTINFO", exit_rip, eii);
    } else if (eii & EVTINJ_VALID) {
        /* an intercepted VMMCALL interrupts no delivery */
        st->bad_exitintinfo++;
        diag(rounds, kind->name, "EXITINTINFO on VMMCALL", eii, 0);
    }

    if (t_l2_entries == 0) {
        st->lost++;
        diag(rounds, kind->name, "lost: handler entries, exit RIP",
             exit_rip, expect_rip);
    } else {
        if (t_l2_entries > 1) {
            st->duplicated++;
            diag(rounds, kind->name, "handler entries", t_l2_entries, 1);
        }
        if (t_l2_vec != vec) {
            st->wrong_vector++;
            diag(rounds, kind->name, "vector", t_l2_vec, vec);
        } else {
            st->delivered++;
            if (t_l2_rip != expect_rip) {
                st->wrong_rip++;
                diag(rounds, kind->name, "pushed RIP", t_l2_rip, expect_rip);
            }
            if ((kind->inj & EVTINJ_EV) &&
                (t_l2_err & 0xffffffffull) != err) {
                st->wrong_error_code++;
                diag(rounds, kind->name, "error code", t_l2_err, err);
            }
            if (k == EV_PF && t_l2_cr2 != cr2) {
                st->wrong_cr2++;
                diag(rounds, kind->name, "CR2", t_l2_cr2, cr2);
            }
        }
    }

    if (k == EV_NMI) {
        l1_nmi_check();
    }
    rounds++;
}

static void totals(Stats *t)
{
    unsigned k;

    memset(t, 0, sizeof(*t));
    for (k = 0; k < EV_TYPES; k++) {
        t->injected += stats[k].injected;
        t->delivered += stats[k].delivered;
        t->lost += stats[k].lost;
        t->duplicated += stats[k].duplicated;
        t->wrong_vector += stats[k].wrong_vector;
        t->wrong_rip += stats[k].wrong_rip;
        t->wrong_error_code += stats[k].wrong_error_code;
        t->wrong_cr2 += stats[k].wrong_cr2;
        t->bad_exitintinfo += stats[k].bad_exitintinfo;
        t->unexpected_exit += stats[k].unexpected_exit;
        t->l1_npf += stats[k].l1_npf;
    }
}

static void print_stats(const Stats *s)
{
    kprintf("\"injected\":%lu,\"delivered\":%lu,\"lost\":%lu,"
            "\"duplicated\":%lu,\"wrong_vector\":%lu,\"wrong_rip\":%lu,"
            "\"wrong_error_code\":%lu,\"wrong_cr2\":%lu,"
            "\"bad_exitintinfo\":%lu,\"unexpected_exit\":%lu,"
            "\"l1_npf\":%lu",
            s->injected, s->delivered, s->lost, s->duplicated,
            s->wrong_vector, s->wrong_rip, s->wrong_error_code,
            s->wrong_cr2, s->bad_exitintinfo, s->unexpected_exit,
            s->l1_npf);
}

static void progress(void)
{
    Stats t;

    totals(&t);
    kprintf("torture: rounds=%lu injected=%lu delivered=%lu lost=%lu "
            "duplicated=%lu wrong_vector=%lu wrong_rip=%lu "
            "wrong_error_code=%lu bad_exitintinfo=%lu unexpected_exit=%lu "
            "l1_nmi_corrupt=%lu\n", rounds, t.injected, t.delivered, t.lost,
            t.duplicated, t.wrong_vector, t.wrong_rip, t.wrong_error_code,
            t.bad_exitintinfo, t.unexpected_exit, l1_nmi_corrupt);
}

static uint64_t result(const char *why)
{
    Stats t;
    unsigned k;
    uint64_t bad;

    totals(&t);
    bad = t.lost + t.duplicated + t.wrong_vector + t.wrong_rip +
          t.wrong_error_code + t.wrong_cr2 + t.bad_exitintinfo +
          t.unexpected_exit + l1_nmi_corrupt + l1_nmi_extra;
    kprintf("torture-result {\"rounds\":%lu,\"stopped_by\":\"%s\","
            "\"nrips\":%u,", rounds, why, nrips);
    print_stats(&t);
    kprintf(",\"l1_nmi_checks\":%lu,\"l1_nmi_corrupt\":%lu,"
            "\"l1_nmi_lost\":%lu,\"l1_nmi_extra\":%lu,"
            "\"nmi_exitintinfo_vector_ignored\":%lu,\"bad\":%lu,"
            "\"per_type\":{", l1_nmi_checks, l1_nmi_corrupt, l1_nmi_lost,
            l1_nmi_extra, nmi_vector_ignored, bad);
    for (k = 0; k < EV_TYPES; k++) {
        kprintf("%s\"%s\":{", k ? "," : "", kinds[k].name);
        print_stats(&stats[k]);
        kprintf("}");
    }
    kprintf("}}\n");
    return bad;
}

uint64_t scenario_torture(const char *cmdline)
{
    uint32_t rev, asids, features;
    uint64_t max_rounds = cmdline_number(cmdline, "rounds=", 0);
    uint64_t last_tsc;
    struct __attribute__((packed)) { uint16_t limit; uint64_t base; } g;
    unsigned v;

    drop_round = cmdline_number(cmdline, "drop=", ~0ull);
    prng_state = cmdline_number(cmdline, "seed=", 0);
    if (!prng_state) {
        prng_state = rdtsc() | 1;
    }
    if (!svm_probe(&rev, &asids, &features)) {
        kprintf("# torture: no SVM\n");
        return 1;
    }
    nrips = features & SVM_FEATURE_NRIPS;
    kprintf("# torture: SVM revision %u, %u ASIDs, Fn8000_000A_EDX 0x%x, "
            "NRIPS %s, seed 0x%lx, rounds %lu (0: until 'q' on COM1)\n",
            rev, asids, features, nrips ? "present" : "absent", prng_state,
            max_rounds);
    if (!(features & SVM_FEATURE_NPT)) {
        kprintf("# torture: no nested paging\n");
        return 1;
    }
    if (!apic_init()) {
        return 1;
    }
    l1_idt_install();

    /* L2's IDT: vector v goes to stub v; its GDT is a copy of L1's */
    for (v = 0; v < 256; v++) {
        idt_set_gate(&l2_idt_image[v],
                     (uint64_t)t_l2_stubs + v * T_L2_STUB_SIZE);
        /* architectural error-code vectors (SDM Vol. 3A, Table 6-1) */
        t_l2_errpushed[v] = v == 8 || (v >= 10 && v <= 14) || v == 17 ||
                            v == 21 || v == 29 || v == 30;
    }
    asm volatile("sgdt %0" : "=m"(g));
    l2_gdt_limit = g.limit;
    memcpy(l2_gdt_image, (void *)g.base,
           g.limit + 1u < sizeof(l2_gdt_image) ? g.limit + 1u
                                               : sizeof(l2_gdt_image));

    /*
     * L2's page tables: the first GiB identity-mapped with 2 MiB pages,
     * each level in a window page, so that every walk during delivery
     * goes through pages that just moved.
     */
    l2_pml4_image[0] = WIN_GPA(WIN_PDPT) | PTE_P | PTE_W;
    l2_pdpt_image[0] = WIN_GPA(WIN_PD) | PTE_P | PTE_W;
    for (v = 0; v < 512; v++) {
        l2_pd_image[v] = ((uint64_t)v << 21) | PTE_P | PTE_W | PTE_PS;
    }

    npt_init();
    svm_enable(hsave);
    vmcb_init();

    kprintf("torture: start\n");
    last_tsc = rdtsc();
    while (!max_rounds || rounds < max_rounds) {
        run_round();
        if (rounds % POLL_ROUNDS == 0) {
            uint64_t now = rdtsc();

            if (now - last_tsc > PROGRESS_TSC) {
                last_tsc = now;
                progress();
            }
            if (uart_quit_requested()) {
                progress();
                return result("q");
            }
        }
    }
    progress();
    return result("rounds");
}

/*
 * L2's code.  Each slot is VMMCALL (intercepted) then UD2: an event
 * that is lost leaves L2 at its RIP, which then exits to L1 at once
 * with no handler entry counted.
 */
asm(
    "   .text\n"
    "   .code64\n"
    "   .balign 4096\n"
    "   .globl t_l2_hw_rip\n"
    "t_l2_hw_rip:\n"
    "   vmmcall\n"
    "   ud2\n"
    "   .balign 64\n"
    "   .globl t_l2_poison\n"
    "t_l2_poison:\n"
    "   vmmcall\n"
    "   ud2\n"
    "   .balign 64\n"
    "   .globl t_l2_soft_rip\n"
    "t_l2_soft_rip:\n"
    "   .rept 8\n"
    "   .balign 16\n"
    "   vmmcall\n"
    "   ud2\n"
    "   .endr\n"
    "   .balign 256\n"
    "   .globl t_l2_soft_next\n"
    "t_l2_soft_next:\n"
    "   .rept 8\n"
    "   .balign 16\n"
    "   vmmcall\n"
    "   ud2\n"
    "   .endr\n"
    /* vector v: push v, then the common handler */
    "   .balign 16\n"
    "   .globl t_l2_stubs\n"
    "t_l2_stubs:\n"
    "   .set t_vec, 0\n"
    "   .rept 256\n"
    "   .balign 16\n"
    "   pushq $t_vec\n"
    "   jmp t_l2_common\n"
    "   .set t_vec, t_vec + 1\n"
    "   .endr\n"
    /*
     * Count the entry; on the first, record the frame.  RDX ends up
     * at the pushed RIP, whether or not an error code lies below it.
     */
    "t_l2_common:\n"
    "   push %rax\n"
    "   push %rbx\n"
    "   push %rcx\n"
    "   push %rdx\n"
    "   mov 32(%rsp), %rax\n"
    "   lea t_l2_errpushed(%rip), %rdx\n"
    "   movzbl (%rdx,%rax), %ecx\n"
    "   lea 40(%rsp), %rdx\n"
    "   xor %ebx, %ebx\n"
    "   test %ecx, %ecx\n"
    "   jz 1f\n"
    "   mov (%rdx), %rbx\n"
    "   add $8, %rdx\n"
    "1: incq t_l2_entries(%rip)\n"
    "   cmpq $1, t_l2_entries(%rip)\n"
    "   jne 2f\n"
    "   mov %rax, t_l2_vec(%rip)\n"
    "   mov %rbx, t_l2_err(%rip)\n"
    "   mov (%rdx), %rax\n"
    "   mov %rax, t_l2_rip(%rip)\n"
    "   mov 8(%rdx), %rax\n"
    "   mov %rax, t_l2_cs(%rip)\n"
    "   mov %cr2, %rax\n"
    "   mov %rax, t_l2_cr2(%rip)\n"
    "   mov %rdx, t_l2_frame(%rip)\n"
    "2: cmpq $0, t_l2_use_iret(%rip)\n"
    "   jne 3f\n"
    "   .globl t_l2_handler_vmmcall\n"
    "t_l2_handler_vmmcall:\n"
    "   vmmcall\n"
    "   ud2\n"
    /* return to the pushed RIP, where a VMMCALL exits */
    "3: mov %rdx, %rsp\n"
    "   iretq\n"
    /* L1's NMI handler */
    "   .balign 16\n"
    "   .globl t_l1_nmi_entry\n"
    "t_l1_nmi_entry:\n"
    "   lock incq t_l1_nmi_count(%rip)\n"
    "   iretq\n"
    "   .data\n"
    "   .balign 8\n"
    "   .globl t_l2_entries, t_l2_vec, t_l2_err, t_l2_rip, t_l2_cs\n"
    "   .globl t_l2_cr2, t_l2_frame, t_l2_use_iret, t_l1_nmi_count\n"
    "   .globl t_l2_errpushed\n"
    "t_l2_entries: .quad 0\n"
    "t_l2_vec: .quad 0\n"
    "t_l2_err: .quad 0\n"
    "t_l2_rip: .quad 0\n"
    "t_l2_cs: .quad 0\n"
    "t_l2_cr2: .quad 0\n"
    "t_l2_frame: .quad 0\n"
    "t_l2_use_iret: .quad 0\n"
    "t_l1_nmi_count: .quad 0\n"
    "t_l2_errpushed: .skip 256\n"
    "   .text\n"
);
