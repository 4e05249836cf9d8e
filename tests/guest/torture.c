/*
 * nkvm-guest: "torture" scenario, the guest as a test hypervisor that
 * injects every kind of event into its L2 while the pages that event
 * delivery touches keep moving
 *
 * What follows is said in SVM's terms; vmx-torture.c is the same
 * hypervisor on VMX (docs/vmx-torture.rst has the mapping), and the
 * scenario takes whichever CPUID offers, SVM first.  This file holds
 * all that does not depend on the vendor; svm-torture.c and
 * vmx-torture.c (TortureHv) hold the rest.
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
 * code and return RIP.  With "cpus=N" (command line, up to TORTURE_CPUS)
 * every vCPU is such a hypervisor with its own L2, window, pool, VMCB
 * and counts; the BSP sums them.  Then each vCPU also sends the next
 * one, while it runs its own rounds, fixed IPIs and NMIs: L1 intercepts
 * INTR and NMI, so one that arrives while L2 runs exits to L1, and L1
 * re-injects whatever EXITINTINFO says was cut short.  At most one IPI
 * and one NMI per pair are in flight at a time, so that none coalesces
 * with another and each one must arrive.  The scenario runs until the
 * BSP has done "rounds=N" rounds, or until it reads 'q' on COM1, prints a
 * progress line about once a second, and ends with one line
 * "torture-result {json}".  See docs/test-guest.rst.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "torture.h"

#define ICR_NMI_ASSERT          0x4400  /* delivery mode NMI, level assert */
#define ICR_FIXED_ASSERT        0x4000  /* fixed delivery, level assert */
#define CROSS_IPI_VECTOR        0xe0
/* t_cross_nmi_state: which NMI a vCPU's handler is to count */
#define CROSS_NMI_IDLE          0
#define CROSS_NMI_SENT          1       /* the next NMI is the cross one */
#define CROSS_NMI_SELF          2       /* a self-NMI check is running */
/* Exits to L1 for IPIs and NMIs that one round may take */
#define MAX_CROSS_EXITS         1000

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

const EventKind torture_kinds[EV_TYPES] = {
    [EV_SOFT_INT] = { "soft_int", EVC_SOFT_INTR, 0x82, false, true },
    [EV_INT3] = { "int3", EVC_SOFT_EXCEPTION, 3, false, true },
    [EV_INTO] = { "into", EVC_SOFT_EXCEPTION, 4, false, true },
    [EV_NMI] = { "nmi", EVC_NMI, 2, false, false },
    [EV_INTR] = { "intr", EVC_EXT_INTR, 0x41, false, false },
    [EV_GP] = { "gp", EVC_HW_EXCEPTION, 13, true, false },
    [EV_PF] = { "pf", EVC_HW_EXCEPTION, 14, true, false },
};

/*
 * "bp_hw=1" (VMX only): L1 injects its #BP as a hardware exception, type
 * 3, which pushes the RIP it names, not RIP plus a length.  KVM re-queues
 * such a #BP after a cut and re-injects it as a software exception
 * (docs/hidden-window.rst), which this round is there to see.
 */
static const EventKind bp_hardware = {
    "int3", EVC_HW_EXCEPTION, 3, false, false
};
static EventKind kinds[EV_TYPES];   /* torture_kinds as this run injects */

_Static_assert(__builtin_offsetof(L2Record, use_iret) == 56,
               "t_l2_common's offsets");

static TortureCpu cpus[TORTURE_CPUS];
static unsigned ncpus = 1;
static volatile bool stop_aps;         /* read by the APs */
static volatile bool quiet;            /* no IPI or NMI in flight any more */
/* "cross=N": what vCPUs send each other, CROSS_IPIS | CROSS_NMIS */
#define CROSS_IPIS              1
#define CROSS_NMIS              2
static unsigned cross_kinds = CROSS_IPIS | CROSS_NMIS;
static volatile uint32_t print_lock;   /* taken by every vCPU */
static uint64_t npt_pml4[512] __attribute__((aligned(PAGE_SIZE)));
static uint64_t npt_pdpt[512] __attribute__((aligned(PAGE_SIZE)));
static uint64_t npt_pd[512] __attribute__((aligned(PAGE_SIZE)));
static const TortureHv *hv;
static IdtGate l2_idt_image[256] __attribute__((aligned(PAGE_SIZE)));
static IdtGate l1_idt[256] __attribute__((aligned(PAGE_SIZE)));
static uint8_t l2_gdt_image[64];
static uint64_t diag_lines;
static uint16_t l2_gdt_limit;
static uint64_t drop_round = ~0ull;    /* "drop=N": lose round N on purpose */

static void lock_print(void)
{
    while (__atomic_exchange_n(&print_lock, 1, __ATOMIC_ACQUIRE)) {
        asm volatile("pause");
    }
}

static void unlock_print(void)
{
    __atomic_store_n(&print_lock, 0, __ATOMIC_RELEASE);
}

static uint64_t prng(TortureCpu *c)
{
    /* xorshift64*: enough to vary the rounds, no quality needed */
    c->prng_state ^= c->prng_state >> 12;
    c->prng_state ^= c->prng_state << 25;
    c->prng_state ^= c->prng_state >> 27;
    return c->prng_state * 0x2545f4914f6cdd1dull;
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
    idt_set_gate(&l1_idt[CROSS_IPI_VECTOR], (uint64_t)t_l1_ipi_entry);
    idt_load(l1_idt, 256);
}

/*
 * A physical destination (its own x2APIC ID) rather than the "self"
 * shorthand, which the SDM allows only with fixed delivery.
 */
static void apic_self_nmi(TortureCpu *c)
{
    wrmsr(MSR_X2APIC_ICR, ((uint64_t)c->index << 32) | ICR_NMI_ASSERT);
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

static bool wait_nmi(volatile uint64_t *count, /* NMI handler writes */
                     uint64_t before)
{
    unsigned i;

    for (i = 0; i < NMI_SPIN; i++) {
        if (*count != before) {
            return true;
        }
        asm volatile("pause");
    }
    return *count != before;
}

static bool diag_slot(void)
{
    return __atomic_fetch_add(&diag_lines, 1, __ATOMIC_RELAXED) < MAX_DIAG;
}

bool torture_cross_events(void)
{
    return ncpus > 1 && cross_kinds;
}
#define cross_events torture_cross_events

/* The vCPU that sends vCPU t its cross IPIs and NMIs (ring order) */
static unsigned cross_sender(unsigned t)
{
    return (t + ncpus - 1) % ncpus;
}

/*
 * The self-NMI check owns this vCPU's NMIs while it runs, so that its
 * handler counts the right one.  A cross NMI still in flight is waited
 * for: if it does not come, L1's NMIs are blocked, which is what the
 * check is for.
 */
static void nmi_check_end(TortureCpu *c)
{
    __atomic_store_n(&t_cross_nmi_state[c->index], CROSS_NMI_IDLE,
                     __ATOMIC_RELEASE);
}

static bool nmi_own(TortureCpu *c, uint64_t from)
{
    uint64_t expect;
    unsigned i;

    for (i = 0; i < NMI_SPIN; i++) {
        expect = from;
        if (__atomic_compare_exchange_n(&t_cross_nmi_state[c->index],
                                        &expect, CROSS_NMI_SELF, false,
                                        __ATOMIC_ACQ_REL,
                                        __ATOMIC_ACQUIRE)) {
            return true;
        }
        asm volatile("pause");
    }
    return false;
}

static bool nmi_check_begin(TortureCpu *c)
{
    bool blocked;

    if (nmi_own(c, CROSS_NMI_IDLE)) {
        return true;
    }
    /*
     * The cross NMI that is due has not come.  If an IRET lets it in,
     * L1's NMIs were blocked; if not, it is lost (cross_nmis_lost), and
     * the check takes its place so that later ones still run.
     */
    iret_to_self();
    blocked = nmi_own(c, CROSS_NMI_IDLE);
    if (diag_slot()) {
        lock_print();
        kprintf("# torture: cpu %u round %lu: the NMI from cpu %u %s\n",
                c->index, c->rounds, cross_sender(c->index),
                blocked ? "was blocked in L1 until IRET" : "never came");
        unlock_print();
    }
    if (blocked) {
        c->l1_nmi_checks++;
        c->l1_nmi_corrupt++;
        nmi_check_end(c);
        return false;
    }
    return nmi_own(c, CROSS_NMI_SENT);
}

/*
 * Now and then a fixed IPI and an NMI to the next vCPU, each only when
 * the last one arrived: a second IPI of the same vector would merge in
 * its IRR bit, a second NMI in the one pending NMI (SDM vol. 3A,
 * "Interrupt Acceptance for Fixed Interrupts" and "Handling Multiple
 * NMIs"), and neither could be counted.
 */
static void cross_send(TortureCpu *c, uint64_t rnd)
{
    unsigned t = (c->index + 1) % ncpus;
    uint64_t dest = (uint64_t)t << 32, idle = CROSS_NMI_IDLE;

    /* A vCPU that has not started would drop them: wait for it */
    if (!cross_events() || stop_aps || !cpus[t].ready) {
        return;
    }
    if ((cross_kinds & CROSS_IPIS) && ((rnd >> 40) & 3) == 0 &&
        c->ipis_sent == t_l1_ipi_count[t]) {
        c->ipis_sent++;
        wrmsr(MSR_X2APIC_ICR, dest | ICR_FIXED_ASSERT |
              CROSS_IPI_VECTOR);
    }
    if ((cross_kinds & CROSS_NMIS) && ((rnd >> 42) & 3) == 0 &&
        __atomic_compare_exchange_n(&t_cross_nmi_state[t], &idle,
                                    CROSS_NMI_SENT, false, __ATOMIC_ACQ_REL,
                                    __ATOMIC_ACQUIRE)) {
        c->nmis_sent++;
        wrmsr(MSR_X2APIC_ICR, dest | ICR_NMI_ASSERT);
    }
}

/* What vCPU t's predecessor sent it that has not arrived yet */
static uint64_t cross_in_flight(unsigned t)
{
    const TortureCpu *from = &cpus[cross_sender(t)];

    return from->ipis_sent - t_l1_ipi_count[t] +
           (t_cross_nmi_state[t] == CROSS_NMI_SENT);
}

/*
 * After the rounds: interrupts on until every IPI and NMI sent has
 * arrived or about a second passed, so that what is still missing is
 * lost.  The BSP decides when; the APs wait for it with interrupts on.
 */
static void cross_drain(bool bsp)
{
    uint64_t start = rdtsc();
    unsigned t;

    if (!cross_events()) {
        return;
    }
    asm volatile("sti" : : : "memory");
    if (bsp) {
        for (t = 0; t < ncpus; t++) {
            while (cross_in_flight(t) && rdtsc() - start < PROGRESS_TSC) {
                asm volatile("pause");
            }
        }
        quiet = true;
    } else {
        while (!quiet) {
            asm volatile("pause");
        }
    }
    asm volatile("cli" : : : "memory");
}

/*
 * After an L1->L2 NMI: L1 (GIF=1, in no NMI handler) sends itself an
 * NMI, which must be taken at once.
 */
static void l1_nmi_check(TortureCpu *c)
{
    volatile uint64_t *count = &t_l1_nmi_count[c->index]; /* NMI handler */
    uint64_t before;

    if (!nmi_check_begin(c)) {
        return;
    }
    before = *count;
    c->l1_nmi_checks++;
    apic_self_nmi(c);
    if (wait_nmi(count, before)) {
        if (*count != before + 1) {
            c->l1_nmi_extra++;
        }
        nmi_check_end(c);
        return;
    }
    c->l1_nmi_corrupt++;
    iret_to_self();
    if (!wait_nmi(count, before)) {
        c->l1_nmi_lost++;
    }
    if (diag_slot()) {
        lock_print();
        kprintf("# torture: cpu %u round %lu: L1's self-NMI blocked until "
                "IRET (%s)\n", c->index, c->rounds, *count != before ?
                "arrived after IRET" : "never arrived");
        unlock_print();
    }
    nmi_check_end(c);
}

/* Nested paging shared by all vCPUs; each has its window's page table */
static void npt_init(void)
{
    unsigned i, n;

    npt_pml4[0] = hv->npte((uint64_t)npt_pdpt, NPTE_TABLE);
    npt_pdpt[0] = hv->npte((uint64_t)npt_pd, NPTE_TABLE);
    for (i = 0; i < 512; i++) {
        npt_pd[i] = hv->npte((uint64_t)i << 21, NPTE_2M);
    }
    for (n = 0; n < ncpus; n++) {
        TortureCpu *c = &cpus[n];
        uint64_t base = WIN_GPA(c, 0) & ~0x1fffffull;

        for (i = 0; i < 512; i++) {
            c->win_pt[i] = hv->npte(base + (uint64_t)i * PAGE_SIZE,
                                    NPTE_4K);
        }
        npt_pd[base >> 21] = hv->npte((uint64_t)c->win_pt, NPTE_TABLE);
    }
}

static void npt_set(TortureCpu *c, unsigned w, uint64_t pa)
{
    /* walked by the CPU, never read back by C */
    volatile uint64_t *pte = &c->win_pt[(WIN_GPA(c, w) >> 12) & 511];

    *pte = pa ? hv->npte(pa, NPTE_4K) : 0;
}

/* Point each window page at a pool page other than the one it had. */
static void windows_remap(TortureCpu *c, uint64_t rnd)
{
    unsigned w;

    for (w = 0; w < NWIN; w++) {
        unsigned step = 1 + (unsigned)((rnd >> (8 * w)) % (POOL_PAGES - 1));
        uint64_t pa;

        c->pool_idx[w] = (c->pool_idx[w] + step) % POOL_PAGES;
        pa = POOL_PA(c, w, c->pool_idx[w]);
        if (w == WIN_IDT) {
            memcpy((void *)pa, l2_idt_image, PAGE_SIZE);
        } else if (w == WIN_GDT) {
            memcpy((void *)pa, l2_gdt_image, sizeof(l2_gdt_image));
        } else if (w == WIN_STACK) {
            /* L2's handler finds its vCPU's record here */
            *(volatile uint64_t *)pa = (uint64_t)&c->rec;
        } else if (w == WIN_PML4) {
            memcpy((void *)pa, c->l2_pml4_image, PAGE_SIZE);
        } else if (w == WIN_PDPT) {
            memcpy((void *)pa, c->l2_pdpt_image, PAGE_SIZE);
        } else if (w == WIN_PD) {
            memcpy((void *)pa, c->l2_pd_image, PAGE_SIZE);
        }
        npt_set(c, w, pa);
    }
}

void torture_diag(TortureCpu *c, const char *kind, const char *what,
                  uint64_t got, uint64_t expected)
{
    if (diag_slot()) {
        lock_print();
        kprintf("# torture: cpu %u round %lu %s: %s: got 0x%lx "
                "expected 0x%lx\n", c->index, c->rounds, kind, what, got,
                expected);
        unlock_print();
    }
}
#define diag torture_diag

/*
 * An exit that cut a delivery short must report exactly the event L1
 * injected in EXITINTINFO (APM vol. 2, 15.7.2).
 */
static void check_in_flight(TortureCpu *c, unsigned k, uint32_t event,
                            uint32_t err, uint32_t *eii, uint32_t eie,
                            const char *what)
{
    if (k == EV_NMI && (*eii & ~EVENT_VECTOR_MASK) ==
        (event & ~EVENT_VECTOR_MASK) && *eii != event) {
        /*
         * The vector of an NMI is ignored (APM vol. 2, 15.20), and
         * KVM re-injects NMIs with vector 0; count it, it is legal.
         */
        c->nmi_vector_ignored++;
        *eii = event;
    }
    if (*eii != event || (*eii & EVENT_ERROR_CODE && eie != err)) {
        c->stats[k].bad_exitintinfo++;
        diag(c, kinds[k].name, what, ((uint64_t)eie << 32) | *eii,
             ((uint64_t)err << 32) | event);
    }
}

/*
 * L2 left for an IPI or NMI of L1's own, which L1 took at STGI: go back
 * into L2 with whatever delivery it cut short.
 */
static void take_cross_exit(TortureCpu *c, const TortureRound *r,
                            TortureExit *e)
{
    c->cross_exits++;
    if (e->eii & EVENT_VALID) {
        c->cross_exits_delivering++;
        check_in_flight(c, r->kind, r->event, r->err, &e->eii, e->eie,
                        "EXITINTINFO on an IPI or NMI");
    }
    hv->reinject(c, e, r);
}

static void run_round(TortureCpu *c)
{
    unsigned k = c->rounds % EV_TYPES;
    const EventKind *kind = &kinds[k];
    Stats *st = &c->stats[k];
    volatile L2Record *rec = &c->rec;  /* L2 writes it */
    uint64_t rnd = prng(c);
    bool use_iret = (rnd & 0x3000000) == 0;
    int unmap = ((rnd >> 26) & 7) == 0 ? (int)((rnd >> 29) % NWIN) : -1;
    uint64_t expect_rip;
    TortureRound r = {
        .kind = k,
        .event = hv->encode(kind),
        /* drop=N proves that a lost event is noticed: round N has none */
        .inject = !(c->index == 0 && c->rounds == drop_round),
        .rsp = WIN_GPA(c, WIN_STACK) + PAGE_SIZE,
        .cr3 = WIN_GPA(c, WIN_PML4),
        .idt = WIN_GPA(c, WIN_IDT),
        .gdt = WIN_GPA(c, WIN_GDT),
        .gdt_limit = l2_gdt_limit,
    };
    TortureExit e;
    unsigned cross;
    bool npf_seen = false;

    if (k == EV_GP) {
        r.err = (uint32_t)(rnd >> 32) & 0xfff8;
    } else if (k == EV_PF) {
        r.err = (uint32_t)(rnd >> 32) & 0x17;
        /* a canonical address in the upper half, page offset kept */
        r.cr2 = 0xffff800000000000ull | ((rnd >> 7) & 0x7fffffffffffull);
    }
    if (kind->soft) {
        r.rip = (uint64_t)t_l2_soft_rip + k * T_L2_SLOT_SIZE;
        r.next_rip = (uint64_t)t_l2_soft_next + k * T_L2_SLOT_SIZE;
        r.insn_len = T_L2_VMX_LEN((rnd >> 45) & 3);
        expect_rip = hv->soft_return(&r);
    } else {
        r.rip = (uint64_t)t_l2_hw_rip;
        r.next_rip = (uint64_t)t_l2_poison;
        expect_rip = r.rip;
    }

    windows_remap(c, rnd);
    if (unmap >= 0) {
        npt_set(c, unmap, 0);
    }
    hv->flush(c);

    rec->entries = 0;
    rec->vec = rec->err = rec->rip = rec->cs = rec->cr2 = ~0ull;
    rec->use_iret = use_iret;

    hv->round_load(c, &r);
    st->injected++;
    cross_send(c, rnd);
    for (cross = 0; ; ) {
        hv->run(c, &e);
        if (e.what == TEXIT_CROSS && ++cross <= MAX_CROSS_EXITS) {
            take_cross_exit(c, &r, &e);
            continue;
        }
        if (e.what != TEXIT_NPF || unmap < 0 || npf_seen) {
            break;
        }
        npf_seen = true;
        /*
         * The nested #PF on the page left out: delivery was under way,
         * so EXITINTINFO must hold exactly the injected event.
         */
        st->l1_npf++;
        if ((e.gpa & ~0xfffull) != WIN_GPA(c, unmap)) {
            st->unexpected_exit++;
            diag(c, kind->name, "nested #PF address", e.gpa,
                 WIN_GPA(c, unmap));
        }
        check_in_flight(c, k, r.event, r.err, &e.eii, e.eie,
                        "EXITINTINFO on the nested #PF");
        /* map it and re-inject what was in flight, as a hypervisor must */
        npt_set(c, unmap, POOL_PA(c, unmap, c->pool_idx[unmap]));
        hv->flush(c);
        hv->reinject(c, &e, &r);
    }

    if (e.what != TEXIT_HCALL) {
        st->unexpected_exit++;
        diag(c, kind->name, "exit code (RIP in the next line)", e.code,
             hv->hcall_exit);
        diag(c, kind->name, "exit RIP, EXITINTINFO", e.rip, e.eii);
    } else if (e.eii & EVENT_VALID) {
        /* an intercepted hypercall interrupts no delivery */
        st->bad_exitintinfo++;
        diag(c, kind->name, "EXITINTINFO on the hypercall", e.eii, 0);
    }

    if (rec->entries == 0) {
        st->lost++;
        diag(c, kind->name, "lost: handler entries, exit RIP",
             e.rip, expect_rip);
    } else {
        if (rec->entries > 1) {
            st->duplicated++;
            diag(c, kind->name, "handler entries", rec->entries, 1);
        }
        if (rec->vec != kind->vector) {
            st->wrong_vector++;
            diag(c, kind->name, "vector", rec->vec, kind->vector);
        } else {
            st->delivered++;
            if (rec->rip != expect_rip) {
                st->wrong_rip++;
                diag(c, kind->name, "pushed RIP", rec->rip, expect_rip);
            }
            if (kind->error_code && (rec->err & 0xffffffffull) != r.err) {
                st->wrong_error_code++;
                diag(c, kind->name, "error code", rec->err, r.err);
            }
            if (k == EV_PF && rec->cr2 != r.cr2) {
                st->wrong_cr2++;
                diag(c, kind->name, "CR2", rec->cr2, r.cr2);
            }
        }
    }

    if (k == EV_NMI) {
        l1_nmi_check(c);
    }
    c->rounds++;
}

/* Every vCPU's counts summed, all types (k < 0) or type k */
static void totals(Stats *t, int k)
{
    unsigned n, i;

    memset(t, 0, sizeof(*t));
    for (n = 0; n < ncpus; n++) {
        for (i = 0; i < EV_TYPES; i++) {
            const Stats *s = &cpus[n].stats[i];

            if (k >= 0 && (unsigned)k != i) {
                continue;
            }
            t->injected += s->injected;
            t->delivered += s->delivered;
            t->lost += s->lost;
            t->duplicated += s->duplicated;
            t->wrong_vector += s->wrong_vector;
            t->wrong_rip += s->wrong_rip;
            t->wrong_error_code += s->wrong_error_code;
            t->wrong_cr2 += s->wrong_cr2;
            t->bad_exitintinfo += s->bad_exitintinfo;
            t->unexpected_exit += s->unexpected_exit;
            t->l1_npf += s->l1_npf;
        }
    }
}

/* One per-vCPU counter summed over the vCPUs */
#define CPU_SUM(field) ({                       \
    uint64_t sum_ = 0;                          \
    unsigned n_;                                \
    for (n_ = 0; n_ < ncpus; n_++) {            \
        sum_ += cpus[n_].field;                 \
    }                                           \
    sum_;                                       \
})

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

    totals(&t, -1);
    lock_print();
    kprintf("torture: rounds=%lu injected=%lu delivered=%lu lost=%lu "
            "duplicated=%lu wrong_vector=%lu wrong_rip=%lu "
            "wrong_error_code=%lu bad_exitintinfo=%lu unexpected_exit=%lu "
            "l1_nmi_corrupt=%lu\n", CPU_SUM(rounds), t.injected,
            t.delivered, t.lost, t.duplicated, t.wrong_vector, t.wrong_rip,
            t.wrong_error_code, t.bad_exitintinfo, t.unexpected_exit,
            CPU_SUM(l1_nmi_corrupt));
    unlock_print();
}

/* Cross IPIs and NMIs sent and never received, over all vCPUs */
static void cross_lost(uint64_t *ipis, uint64_t *nmis)
{
    unsigned t;

    *ipis = *nmis = 0;
    for (t = 0; cross_events() && t < ncpus; t++) {
        const TortureCpu *from = &cpus[cross_sender(t)];

        *ipis += from->ipis_sent - t_l1_ipi_count[t];
        *nmis += from->nmis_sent - t_l1_cross_nmi_count[t];
    }
}

static uint64_t result(const char *why)
{
    Stats t;
    unsigned k, n;
    uint64_t bad, ipis_lost, nmis_lost;

    totals(&t, -1);
    cross_lost(&ipis_lost, &nmis_lost);
    bad = t.lost + t.duplicated + t.wrong_vector + t.wrong_rip +
          t.wrong_error_code + t.wrong_cr2 + t.bad_exitintinfo +
          t.unexpected_exit + CPU_SUM(l1_nmi_corrupt) +
          CPU_SUM(l1_nmi_extra) + ipis_lost + nmis_lost;
    lock_print();
    kprintf("torture-result {\"rounds\":%lu,\"stopped_by\":\"%s\","
            "\"hv\":\"%s\",\"cpus\":%u,", CPU_SUM(rounds), why,
            hv ? hv->name : "none", ncpus);
    print_stats(&t);
    kprintf(",\"cross_ipis_sent\":%lu,\"cross_ipis_lost\":%lu,"
            "\"cross_nmis_sent\":%lu,\"cross_nmis_lost\":%lu,"
            "\"cross_exits\":%lu,\"cross_exits_delivering\":%lu",
            CPU_SUM(ipis_sent), ipis_lost, CPU_SUM(nmis_sent), nmis_lost,
            CPU_SUM(cross_exits), CPU_SUM(cross_exits_delivering));
    kprintf(",\"l1_nmi_checks\":%lu,\"l1_nmi_corrupt\":%lu,"
            "\"l1_nmi_lost\":%lu,\"l1_nmi_extra\":%lu,"
            "\"nmi_exitintinfo_vector_ignored\":%lu,\"bad\":%lu,"
            "\"per_type\":{", CPU_SUM(l1_nmi_checks),
            CPU_SUM(l1_nmi_corrupt), CPU_SUM(l1_nmi_lost),
            CPU_SUM(l1_nmi_extra), CPU_SUM(nmi_vector_ignored), bad);
    for (k = 0; k < EV_TYPES; k++) {
        Stats tk;

        totals(&tk, (int)k);
        kprintf("%s\"%s\":{", k ? "," : "", kinds[k].name);
        print_stats(&tk);
        kprintf("}");
    }
    kprintf("},\"per_cpu\":[");
    for (n = 0; n < ncpus; n++) {
        kprintf("%s{\"rounds\":%lu,\"done\":%u}", n ? "," : "",
                cpus[n].rounds, n == 0 || cpus[n].done);
    }
    kprintf("]}\n");
    unlock_print();
    return bad;
}

/* Per-vCPU set-up: its L2's page tables, in its own window */
static void cpu_init(TortureCpu *c, unsigned index, uint64_t seed)
{
    unsigned v;

    c->index = index;
    c->prng_state = seed + index * 0x9e3779b97f4a7c15ull;
    if (!c->prng_state) {
        c->prng_state = 1;
    }
    /*
     * The first GiB identity-mapped with 2 MiB pages, each level in a
     * window page, so that every walk during delivery goes through
     * pages that just moved.
     */
    c->l2_pml4_image[0] = WIN_GPA(c, WIN_PDPT) | PTE_P | PTE_W;
    c->l2_pdpt_image[0] = WIN_GPA(c, WIN_PD) | PTE_P | PTE_W;
    for (v = 0; v < 512; v++) {
        c->l2_pd_image[v] = ((uint64_t)v << 21) | PTE_P | PTE_W | PTE_PS;
    }
}

/* What every vCPU does before its first round */
static void cpu_start(TortureCpu *c)
{
    idt_load(l1_idt, 256);
    hv->cpu_start(c, (uint64_t)npt_pml4);
    c->ready = true;
}

/* An application processor: rounds until the BSP says stop */
static void ap_torture(unsigned index)
{
    TortureCpu *c = &cpus[index];

    cpu_start(c);
    while (!stop_aps) {
        run_round(c);
    }
    c->done = true;
    cross_drain(false);
}

/* Stop the APs, waiting up to about a second for each to finish */
static void aps_stop(void)
{
    unsigned n;

    stop_aps = true;
    for (n = 1; n < ncpus; n++) {
        uint64_t start = rdtsc();

        while (!cpus[n].done && rdtsc() - start < PROGRESS_TSC) {
            asm volatile("pause");
        }
    }
}

static uint64_t finish(const char *why)
{
    aps_stop();
    cross_drain(true);
    progress();
    return result(why);
}

/*
 * L2's code is written with SVM's VMMCALL; on VMX each one becomes a
 * VMCALL (both are three bytes) before any L2 runs.
 */
static void hcall_patch(void)
{
    uint64_t *site;
    uint32_t a, b, c, d;

    for (site = t_l2_hcall_sites; site < t_l2_hcall_sites_end; site++) {
        memcpy((void *)*site, hv->hcall, sizeof(hv->hcall));
    }
    cpuid(0, &a, &b, &c, &d);   /* serializes: the new bytes run */
}

uint64_t scenario_torture(const char *cmdline)
{
    uint64_t max_rounds = cmdline_number(cmdline, "rounds=", 0);
    uint64_t want = cmdline_number(cmdline, "cpus=", 1);
    uint64_t seed, last_tsc;
    struct __attribute__((packed)) { uint16_t limit; uint64_t base; } g;
    TortureCpu *bsp = &cpus[0];
    unsigned v, started;

    drop_round = cmdline_number(cmdline, "drop=", ~0ull);
    cross_kinds = cmdline_number(cmdline, "cross=", CROSS_IPIS | CROSS_NMIS);
    seed = cmdline_number(cmdline, "seed=", 0);
    if (!seed) {
        seed = rdtsc() | 1;
    }
    if (want < 1 || want > TORTURE_CPUS) {
        kprintf("# torture: cpus=%lu, not 1 to %u\n", want, TORTURE_CPUS);
        return 1;
    }
    kprintf("# torture: seed 0x%lx, rounds %lu (0: until 'q' on COM1), "
            "cpus %lu\n", seed, max_rounds, want);
    hv = torture_svm.probe() ? &torture_svm :
         torture_vmx.probe() ? &torture_vmx : NULL;
    if (!hv) {
        kprintf("# torture: neither SVM nor VMX can run it\n");
        return 1;
    }
    memcpy(kinds, torture_kinds, sizeof(kinds));
    if (cmdline_number(cmdline, "bp_hw=", 0)) {
        if (hv != &torture_vmx) {
            /* EVENTINJ's exception type is what SVM uses for INT3 anyway */
            kprintf("# torture: bp_hw=1 needs VMX\n");
            return 1;
        }
        kinds[EV_INT3] = bp_hardware;
        kprintf("# torture: L1 injects #BP as a hardware exception "
                "(type 3)\n");
    }
    hcall_patch();
    if (!x2apic_enable()) {
        kprintf("# torture: no x2APIC\n");
        return 1;
    }
    /*
     * The 8259s stay as the BIOS left them, IRQ 0 on vector 8: L1 opens
     * its interrupt window only for the other vCPUs' IPIs.
     */
    outb(0x21, 0xff);
    outb(0xa1, 0xff);
    if (x2apic_id() != 0) {
        kprintf("# torture: the BSP's x2APIC ID is %u, not 0\n",
                x2apic_id());
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

    ncpus = want;
    for (v = 0; v < ncpus; v++) {
        cpu_init(&cpus[v], v, seed);
    }
    npt_init();
    cpu_start(bsp);
    if (ncpus > 1) {
        started = smp_start(ncpus, ap_torture);
        if (started != ncpus) {
            kprintf("# torture: only %u of %u vCPUs started\n", started,
                    ncpus);
            ncpus = started;
            finish("smp");
            return 1;
        }
    }

    kprintf("torture: start\n");
    last_tsc = rdtsc();
    while (!max_rounds || bsp->rounds < max_rounds) {
        run_round(bsp);
        if (bsp->rounds % POLL_ROUNDS == 0) {
            uint64_t now = rdtsc();

            if (now - last_tsc > PROGRESS_TSC) {
                last_tsc = now;
                progress();
            }
            if (uart_quit_requested()) {
                return finish("q");
            }
        }
    }
    return finish("rounds");
}

/*
 * L2's code.  Each slot is a hypercall (intercepted) then UD2: an
 * event that is lost leaves L2 at its RIP, which then exits to L1 at
 * once with no handler entry counted.
 */
asm(
    /* HCALL: a VMMCALL whose address goes into t_l2_hcall_sites */
    "   .macro HCALL\n"
    "771:\n"
    "   vmmcall\n"
    "   .pushsection .data.t_l2_hcall_sites, \"aw\"\n"
    "   .quad 771b\n"
    "   .popsection\n"
    "   .endm\n"
    "   .pushsection .data.t_l2_hcall_sites, \"aw\"\n"
    "   .balign 8\n"
    "   .globl t_l2_hcall_sites\n"
    "t_l2_hcall_sites:\n"
    "   .popsection\n"
    "   .text\n"
    "   .code64\n"
    "   .balign 4096\n"
    "   .globl t_l2_hw_rip\n"
    "t_l2_hw_rip:\n"
    "   HCALL\n"
    "   ud2\n"
    "   .balign 64\n"
    "   .globl t_l2_poison\n"
    "t_l2_poison:\n"
    "   HCALL\n"
    "   ud2\n"
    "   .balign 64\n"
    /*
     * A soft event's slot: the event's RIP, then the four places VMX's
     * instruction lengths (T_L2_VMX_LEN) make it return to.
     */
    "   .globl t_l2_soft_rip\n"
    "t_l2_soft_rip:\n"
    "   .rept 8\n"
    "   .balign 32\n"
    "   HCALL\n"
    "   ud2\n"
    "   HCALL\n"
    "   HCALL\n"
    "   HCALL\n"
    "   HCALL\n"
    "   ud2\n"
    "   .endr\n"
    "   .balign 256\n"
    "   .globl t_l2_soft_next\n"
    "t_l2_soft_next:\n"
    "   .rept 8\n"
    "   .balign 32\n"
    "   HCALL\n"
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
     * Count the entry; on the first, record the frame, in this vCPU's
     * L2Record, whose address L1 left at the bottom of L2's stack page.
     * RDX ends up at the pushed RIP, whether or not an error code lies
     * below it.
     */
    "t_l2_common:\n"
    "   push %rax\n"
    "   push %rbx\n"
    "   push %rcx\n"
    "   push %rdx\n"
    "   push %rsi\n"
    "   mov %rsp, %rsi\n"
    "   and $-4096, %rsi\n"
    "   mov (%rsi), %rsi\n"
    "   mov 40(%rsp), %rax\n"
    "   lea t_l2_errpushed(%rip), %rdx\n"
    "   movzbl (%rdx,%rax), %ecx\n"
    "   lea 48(%rsp), %rdx\n"
    "   xor %ebx, %ebx\n"
    "   test %ecx, %ecx\n"
    "   jz 1f\n"
    "   mov (%rdx), %rbx\n"
    "   add $8, %rdx\n"
    "1: incq 0(%rsi)\n"              /* entries */
    "   cmpq $1, 0(%rsi)\n"
    "   jne 2f\n"
    "   mov %rax, 8(%rsi)\n"         /* vec */
    "   mov %rbx, 16(%rsi)\n"        /* err */
    "   mov (%rdx), %rax\n"
    "   mov %rax, 24(%rsi)\n"        /* rip */
    "   mov 8(%rdx), %rax\n"
    "   mov %rax, 32(%rsi)\n"        /* cs */
    "   mov %cr2, %rax\n"
    "   mov %rax, 40(%rsi)\n"        /* cr2 */
    "   mov %rdx, 48(%rsi)\n"        /* frame */
    "2: cmpq $0, 56(%rsi)\n"         /* use_iret */
    "   jne 3f\n"
    "   .globl t_l2_handler_hcall\n"
    "t_l2_handler_hcall:\n"
    "   HCALL\n"
    "   ud2\n"
    /* return to the pushed RIP, where a VMMCALL exits */
    "3: mov %rdx, %rsp\n"
    "   iretq\n"
    /*
     * L1's NMI handler, per vCPU (x2APIC ID): the NMI another vCPU sent
     * if t_cross_nmi_state says one is coming (and then no longer),
     * else the vCPU's own.
     */
    "   .balign 16\n"
    "   .globl t_l1_nmi_entry\n"
    "t_l1_nmi_entry:\n"
    "   push %rax\n"
    "   push %rcx\n"
    "   push %rdx\n"
    "   push %rsi\n"
    "   mov $0x802, %ecx\n"
    "   rdmsr\n"
    "   cmp $" GUEST_STR(TORTURE_CPUS) ", %eax\n"
    "   jae 2f\n"
    "   mov %eax, %esi\n"
    "   lea t_cross_nmi_state(%rip), %rcx\n"
    "   mov $" GUEST_STR(CROSS_NMI_SENT) ", %eax\n"
    "   mov $" GUEST_STR(CROSS_NMI_IDLE) ", %edx\n"
    "   lock cmpxchgq %rdx, (%rcx,%rsi,8)\n"
    "   lea t_l1_cross_nmi_count(%rip), %rcx\n"
    "   je 1f\n"
    "   lea t_l1_nmi_count(%rip), %rcx\n"
    "1: lock incq (%rcx,%rsi,8)\n"
    "2: pop %rsi\n"
    "   pop %rdx\n"
    "   pop %rcx\n"
    "   pop %rax\n"
    "   iretq\n"
    /* L1's handler of the cross IPI: counts per vCPU, then EOI */
    "   .balign 16\n"
    "   .globl t_l1_ipi_entry\n"
    "t_l1_ipi_entry:\n"
    "   push %rax\n"
    "   push %rcx\n"
    "   push %rdx\n"
    "   mov $0x802, %ecx\n"
    "   rdmsr\n"
    "   cmp $" GUEST_STR(TORTURE_CPUS) ", %eax\n"
    "   jae 1f\n"
    "   lea t_l1_ipi_count(%rip), %rcx\n"
    "   lock incq (%rcx,%rax,8)\n"
    "1:\n"
    X2APIC_EOI_ASM
    "   pop %rdx\n"
    "   pop %rcx\n"
    "   pop %rax\n"
    "   iretq\n"
    "   .data\n"
    "   .balign 8\n"
    "   .globl t_l1_nmi_count, t_l2_errpushed, t_l1_ipi_count\n"
    "   .globl t_l1_cross_nmi_count, t_cross_nmi_state\n"
    "t_l1_nmi_count: .skip 8 * " GUEST_STR(TORTURE_CPUS) "\n"
    "t_l1_cross_nmi_count: .skip 8 * " GUEST_STR(TORTURE_CPUS) "\n"
    "t_l1_ipi_count: .skip 8 * " GUEST_STR(TORTURE_CPUS) "\n"
    "t_cross_nmi_state: .skip 8 * " GUEST_STR(TORTURE_CPUS) "\n"
    "t_l2_errpushed: .skip 256\n"
    "   .pushsection .data.t_l2_hcall_sites, \"aw\"\n"
    "   .globl t_l2_hcall_sites_end\n"
    "t_l2_hcall_sites_end:\n"
    "   .popsection\n"
    "   .text\n"
    "   .purgem HCALL\n"
);
