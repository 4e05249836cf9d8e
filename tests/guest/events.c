/*
 * nkvm-guest: "events-nmi-held" and "events-stream" scenarios
 *
 * Both are driven by tests/functional/test_states.py, which migrates the
 * VM while events are in flight and checks that each one is seen exactly
 * once, with the right return RIP and error code.
 *
 * events-nmi-held
 *   The guest waits in HLT (IF=0) and prints "READY nmi-held".  The host
 *   injects an NMI; the handler prints "HELD nmi" and polls COM1 for a
 *   byte.  Meanwhile the host injects a second NMI, which stays pending
 *   because NMIs are blocked until the handler's IRET, migrates the VM
 *   and sends the byte to the destination.  The second NMI must then be
 *   delivered exactly once, right after the IRET.
 *
 * events-stream
 *   An endless loop of self-NMIs (local APIC ICR), #PF on a not-present
 *   page, #DB from single-step and from a data breakpoint, and fixed
 *   self-IPIs taken on "STI; HLT", each counted when raised and when
 *   handled.  The host migrates the VM back and forth at random
 *   moments; a byte on COM1 ends the loop and the guest reports.
 *
 * These scenarios install their own IDT (stubs in events.S) and never
 * use main.c's vector bookkeeping.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "nkvm-guest.h"

#define VEC_DB                  1
#define VEC_NMI                 2
#define VEC_PF                  14
#define VEC_IPI                 0x40
#define VEC_SPURIOUS            0xff

#define RFLAGS_TF               (1ull << 8)
#define RFLAGS_IF               (1ull << 9)

#define PF_ERR_W                (1 << 1)     /* write to a not-present page */

#define DR6_B0                  (1ull << 0)
#define DR6_BS                  (1ull << 14)
#define DR6_RESET               0xffff0ff0ull
/* DR7: L0, R/W0 = 01 (data writes), LEN0 = 11 (4 bytes); SDM Vol. 3A 18.2.4 */
#define DR7_WRITE4_B0           (0x1ull | (0x1ull << 16) | (0x3ull << 18))

/* Local APIC, xAPIC mode (SDM Vol. 3A 11.4.1, Table 11-1) */
#define APIC_BASE               0xfee00000ull
#define APIC_ID                 0x020
#define APIC_EOI                0x0b0
#define APIC_SVR                0x0f0
#define APIC_ICR_LO             0x300
#define APIC_ICR_HI             0x310
#define APIC_LVT_LINT0          0x350
#define APIC_ICR_FIXED          (0 << 8)     /* delivery mode fixed */
#define APIC_ICR_NMI            (4 << 8)     /* delivery mode NMI */
#define APIC_ICR_ASSERT         (1 << 14)

#define PTE_PWT                 (1 << 3)
#define PTE_PCD                 (1 << 4)

#define UART_RBR                0
#define UART_LSR                5
#define UART_LSR_DR             0x01

/* Progress line every this many rounds, so the host sees the loop run. */
#define STREAM_PROGRESS_MASK    1023

typedef void (*CheckFn)(const char *desc, uint64_t got, uint64_t expected);

enum {
    EV_NMI,
    EV_PF,
    EV_STEP,
    EV_DATA,
    EV_IPI,
    EV_COUNT,
};

/* Counters of one kind of event; handlers write them, hence volatile. */
typedef struct EventStats {
    const char *name;
    const char *check_raised;
    const char *check_once;
    const char *check_rip;
    const char *check_detail;   /* what bad_detail counts */
    volatile uint32_t raised;       /* read by handlers */
    volatile uint32_t handled;      /* written by handlers */
    volatile uint32_t bad_rip;      /* written by handlers */
    volatile uint32_t bad_detail;   /* written by handlers */
    volatile uint32_t excess;       /* handled - raised, last printed */
    volatile uint64_t last_rip;     /* written by handlers */
} EventStats;

/* Designated, so that the counters need no initializer of their own. */
#define EVENT_CHECKS(n, rip, detail) \
    .name = n, .check_raised = n " raised", \
    .check_once = n " each handled exactly once", \
    .check_rip = n " return RIP " rip " (wrong ones)", \
    .check_detail = n " " detail " (wrong ones)"

static EventStats stats[EV_COUNT] = {
    [EV_NMI] = { EVENT_CHECKS("self-NMI", "within the send-and-wait loop",
                              "(unused)") },
    [EV_PF] = { EVENT_CHECKS("#PF", "is the faulting store",
                             "CR2, error code 0x2, retried store") },
    [EV_STEP] = { EVENT_CHECKS("#DB single-step",
                               "is after the stepped instruction",
                               "DR6.BS set") },
    [EV_DATA] = { EVENT_CHECKS("#DB data breakpoint",
                               "is after the watched store",
                               "DR6.B0 set") },
    [EV_IPI] = { EVENT_CHECKS("self-IPI on STI;HLT", "is after HLT",
                              "interrupted context had IF=1") },
};

/* events-nmi-held: what each of the two NMIs saw on entry */
typedef struct HeldNmi {
    uint64_t rip;
    uint64_t cs;
    uint64_t rflags;
    uint32_t passes;            /* events_passes at entry */
} HeldNmi;

static volatile uint32_t held_count;           /* NMI handler writes */
static volatile HeldNmi held[2];               /* NMI handler writes */
static volatile uint32_t held_count_at_release; /* NMI handler writes */
static volatile uint8_t held_release_byte;      /* NMI handler writes */

static volatile bool stream_mode;              /* handlers read */
static volatile bool in_nmi;                   /* NMI handler writes */
static volatile uint32_t nested_nmis;          /* NMI handler writes */
static volatile uint32_t spurious;             /* handler writes */
static volatile uint32_t rounds;               /* read by handlers */
volatile uint32_t events_passes;               /* events.S writes */

/* the #PF handler reads them */
static volatile uint64_t pf_addr;              /* page of the store */
static volatile uint64_t pf_store;             /* address it writes */
static volatile int db_armed = -1;             /* EV_STEP or EV_DATA */
/* volatile: the store to it must happen, under a data breakpoint */
static volatile uint32_t watched __attribute__((aligned(8)));
static uint8_t pf_target[PAGE_SIZE] __attribute__((aligned(PAGE_SIZE)));
static uint64_t apic_pd[512] __attribute__((aligned(PAGE_SIZE)));

/* volatile: local APIC registers are MMIO */
static volatile uint32_t *apic_reg(unsigned off)
{
    return (volatile uint32_t *)(APIC_BASE + off);  /* MMIO */
}

static uint64_t read_dr6(void)
{
    uint64_t v;

    asm volatile("mov %%dr6, %0" : "=r"(v));
    return v;
}

static void write_dr6(uint64_t v)
{
    asm volatile("mov %0, %%dr6" : : "r"(v));
}

static void write_dr0(uint64_t v)
{
    asm volatile("mov %0, %%dr0" : : "r"(v));
}

static void write_dr7(uint64_t v)
{
    asm volatile("mov %0, %%dr7" : : "r"(v));
}

static bool serial_byte_ready(void)
{
    return inb(NKVM_COM1 + UART_LSR) & UART_LSR_DR;
}

static uint8_t serial_wait_byte(void)
{
    while (!serial_byte_ready()) {
        asm volatile("pause");
    }
    return inb(NKVM_COM1 + UART_RBR);
}

/* Print what the handler cannot return from, and end the run. */
static void __attribute__((noreturn)) events_fatal(IsrFrame *f,
                                                   const char *why)
{
    kprintf("not ok - %s: vector %lu, error code 0x%lx, RIP 0x%lx, "
            "CS 0x%lx, RFLAGS 0x%lx\n", why, f->vector, f->error_code,
            f->rip, f->cs, f->rflags);
    kprintf("FAIL\n");
    guest_exit(NKVM_EXIT_FAIL);
}

static void count_handled(EventStats *s, IsrFrame *f, uint64_t want_rip)
{
    s->handled++;
    if (s->handled > s->raised + s->excess) {
        /*
         * Say where at once, so that the host can tell which migration
         * came before; once per extra event, not per round after it.
         */
        s->excess = s->handled - s->raised;
        kprintf("# DUPLICATE %s in round %u: handled %u, raised %u, "
                "RIP 0x%lx\n", s->name, rounds, s->handled, s->raised,
                f->rip);
    }
    s->last_rip = f->rip;
    if (f->rip != want_rip) {
        s->bad_rip++;
    }
}

static void held_nmi(IsrFrame *f)
{
    uint32_t n = held_count;

    if (n < 2) {
        held[n].rip = f->rip;
        held[n].cs = f->cs;
        held[n].rflags = f->rflags;
        held[n].passes = events_passes;
    }
    held_count = n + 1;
    if (n == 0) {
        /*
         * Stay in the handler, NMIs blocked, until the host has injected
         * the second NMI, migrated and released us from the destination.
         */
        kprintf("HELD nmi\n");
        held_release_byte = serial_wait_byte();
        held_count_at_release = held_count;
    }
}

static void nmi_event(IsrFrame *f)
{
    if (in_nmi) {
        nested_nmis++;
    }
    in_nmi = true;
    if (!stream_mode) {
        held_nmi(f);
    } else {
        EventStats *s = &stats[EV_NMI];

        count_handled(s, f, f->rip);
        if (f->rip < (uint64_t)events_self_nmi_window ||
            f->rip >= (uint64_t)events_self_nmi_window_end) {
            s->bad_rip++;
        }
    }
    in_nmi = false;
}

static void pf_event(IsrFrame *f)
{
    EventStats *s = &stats[EV_PF];
    uint64_t cr2 = read_cr2();

    if (!stream_mode || (cr2 & ~(uint64_t)(PAGE_SIZE - 1)) != pf_addr) {
        events_fatal(f, "unexpected #PF");
    }
    count_handled(s, f, (uint64_t)events_pf_insn);
    if (cr2 != pf_store || (f->error_code & 0xffffffff) != PF_ERR_W) {
        s->bad_detail++;
    }
    /* Map the page: the faulting store is retried and must then work. */
    boot_pt[cr2 >> 12] |= PTE_P;
    invlpg(cr2);
}

static void db_event(IsrFrame *f)
{
    uint64_t dr6 = read_dr6();
    int kind = db_armed;

    if (!stream_mode || kind < 0) {
        events_fatal(f, "unexpected #DB");
    }
    db_armed = -1;
    write_dr6(DR6_RESET);
    if (kind == EV_STEP) {
        count_handled(&stats[EV_STEP], f, (uint64_t)events_step_ret);
        if (!(dr6 & DR6_BS)) {
            stats[EV_STEP].bad_detail++;
        }
        f->rflags &= ~RFLAGS_TF;
    } else {
        count_handled(&stats[EV_DATA], f, (uint64_t)events_data_ret);
        if (!(dr6 & DR6_B0)) {
            stats[EV_DATA].bad_detail++;
        }
    }
}

static void ipi_event(IsrFrame *f)
{
    EventStats *s = &stats[EV_IPI];

    if (!stream_mode) {
        events_fatal(f, "unexpected interrupt");
    }
    count_handled(s, f, (uint64_t)events_hlt_ret);
    /* Only STI;HLT runs with IF=1, so the interrupted context had IF=1. */
    if (!(f->rflags & RFLAGS_IF)) {
        s->bad_detail++;
    }
    *apic_reg(APIC_EOI) = 0;
}

void events_dispatch(IsrFrame *f)
{
    switch (f->vector & 0xff) {
    case VEC_NMI:
        nmi_event(f);
        break;
    case VEC_PF:
        pf_event(f);
        break;
    case VEC_DB:
        db_event(f);
        break;
    case VEC_IPI:
        ipi_event(f);
        break;
    case VEC_SPURIOUS:
        spurious++;                 /* no EOI for the spurious vector */
        break;
    default:
        events_fatal(f, "unexpected vector");
    }
}

/* Every vector now reaches events_dispatch() through isr.S's stubs. */
static void events_take_interrupts(void)
{
    isr_handler = events_dispatch;
}

/* Spin for about the given number of TSC cycles. */
static void tsc_delay(uint64_t cycles)
{
    uint64_t start = rdtsc();

    while (rdtsc() - start < cycles) {
        asm volatile("pause");
    }
}

void scenario_events_nmi_held(CheckFn check)
{
    events_take_interrupts();
    stream_mode = false;

    kprintf("READY nmi-held\n");
    events_wait_nmi(&held_count, 2);
    /* A third NMI (one delivered twice) would show up in the meantime. */
    tsc_delay(200000000);

    check("exactly two NMIs delivered", held_count, 2);
    check("the first NMI stayed the only one while its handler ran",
          held_count_at_release, 1);
    check("release byte received in the NMI handler", held_release_byte,
          'R');
    check("no NMI nested inside the NMI handler", nested_nmis, 0);
    check("first NMI return RIP is right after HLT", held[0].rip,
          (uint64_t)events_wait_nmi_after_hlt);
    check("second NMI return RIP is right after HLT", held[1].rip,
          (uint64_t)events_wait_nmi_after_hlt);
    check("second NMI came straight after the first one's IRET "
          "(code after HLT did not run in between)",
          held[1].passes, held[0].passes);
    check("both NMIs saved the 64-bit code segment",
          held[0].cs | held[1].cs, GDT_CODE64);
    check("both NMIs arrived with RFLAGS.IF=0",
          (held[0].rflags | held[1].rflags) & RFLAGS_IF, 0);
}

/* Map the local APIC (above the first GiB that boot.S maps), uncached. */
static void apic_init(void)
{
    uint64_t cr3, *pml4, *pdpt;

    asm volatile("mov %%cr3, %0" : "=r"(cr3));
    pml4 = (uint64_t *)(cr3 & ~0xfffull);
    pdpt = (uint64_t *)(pml4[0] & ~0xfffull);
    apic_pd[(APIC_BASE >> 21) & 511] = APIC_BASE | PTE_P | PTE_W | PTE_PS |
                                       PTE_PCD | PTE_PWT;
    pdpt[APIC_BASE >> 30] = (uint64_t)apic_pd | PTE_P | PTE_W;
    asm volatile("mov %0, %%cr3" : : "r"(cr3) : "memory");

    /* Mask the 8259s: SeaBIOS left the PIT's IRQ 0 enabled. */
    outb(0x21, 0xff);
    outb(0xa1, 0xff);
    *apic_reg(APIC_SVR) = APIC_SVR_ENABLE | VEC_SPURIOUS;
    *apic_reg(APIC_LVT_LINT0) = APIC_LVT_MASKED;
}

static void stream_round(uint32_t apic_id)
{
    /* volatile: the store is in events.S; the reload must really load */
    volatile uint64_t *p = (volatile uint64_t *)pf_store;
    uint64_t value = rdtsc() | 1;
    EventStats *s;

    s = &stats[EV_NMI];
    s->raised++;
    *apic_reg(APIC_ICR_HI) = apic_id << 24;
    events_self_nmi(apic_reg(APIC_ICR_LO), APIC_ICR_ASSERT | APIC_ICR_NMI,
                    &s->handled, s->raised);

    s = &stats[EV_PF];
    boot_pt[pf_addr >> 12] &= ~(uint64_t)PTE_P;
    invlpg(pf_addr);
    s->raised++;
    events_pf_write(p, value);
    if (*p != value) {
        s->bad_detail++;            /* the retried store did not land */
    }

    s = &stats[EV_STEP];
    db_armed = EV_STEP;
    s->raised++;
    events_single_step();

    s = &stats[EV_DATA];
    write_dr0((uint64_t)&watched);
    write_dr7(DR7_WRITE4_B0);
    db_armed = EV_DATA;
    s->raised++;
    events_data_write(&watched);
    write_dr7(0);

    /*
     * A fixed interrupt to this CPU, sent with IF=0: it waits in the IRR
     * and is taken after STI;HLT.  (The LAPIC timer would do as well but
     * for migration: QEMU sends the LAPIC to KVM without its current
     * count, and an expired one-shot then fires once more; see
     * docs/mirror.rst, "Tests".)
     */
    s = &stats[EV_IPI];
    s->raised++;
    *apic_reg(APIC_ICR_HI) = apic_id << 24;
    *apic_reg(APIC_ICR_LO) = APIC_ICR_ASSERT | APIC_ICR_FIXED | VEC_IPI;
    events_sti_hlt(&s->handled, s->raised);
}

void scenario_events_stream(CheckFn check)
{
    uint32_t apic_id;
    unsigned k;

    events_take_interrupts();
    pf_addr = (uint64_t)pf_target;
    pf_store = pf_addr + 0x40;
    if (pf_addr + PAGE_SIZE > 0x200000) {
        /* boot.S maps only the first 2 MiB with 4 KiB pages */
        check("#PF target page lies in the 4 KiB-mapped region",
              pf_addr, 0x200000);
        return;
    }
    apic_init();
    apic_id = *apic_reg(APIC_ID) >> 24;
    write_dr6(DR6_RESET);
    stream_mode = true;

    kprintf("READY events-stream (APIC ID %u)\n", apic_id);
    while (!serial_byte_ready()) {
        stream_round(apic_id);
        rounds++;
        if (!(rounds & STREAM_PROGRESS_MASK)) {
            kprintf("# round %u\n", rounds);
        }
    }
    inb(NKVM_COM1 + UART_RBR);
    /* Anything still in flight would arrive now, and be counted. */
    tsc_delay(100000000);

    kprintf("# %u rounds, %u spurious APIC interrupts\n", rounds, spurious);
    for (k = 0; k < EV_COUNT; k++) {
        EventStats *s = &stats[k];

        kprintf("# %s: raised %u, handled %u, last return RIP 0x%lx\n",
                s->name, s->raised, s->handled, s->last_rip);
        check(s->check_raised, s->raised > 0, 1);
        check(s->check_once, s->handled, s->raised);
        check(s->check_rip, s->bad_rip, 0);
        if (k != EV_NMI) {
            check(s->check_detail, s->bad_detail, 0);
        }
    }
    check("no NMI nested inside the NMI handler", nested_nmis, 0);
}
