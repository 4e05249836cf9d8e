/*
 * nkvm-guest: IDT, event recording and the test scenarios
 *
 * The Multiboot command line (QEMU -append) picks the scenario:
 *
 *   smoke        INT 0x80, INT3, INTO (compatibility mode), #PF with
 *                error code, then an NMI injected by the host (QMP
 *                inject-nmi) after the guest prints "READY nmi".
 *   migrate      smoke's synchronous checks, a memory pattern, then
 *                "READY migrate"; the host migrates the VM and injects
 *                the NMI on the destination; the pattern is rechecked.
 *   expect-fail  smoke's synchronous checks with one expectation wrong
 *                on purpose: must end in "not ok" and FAIL, proving the
 *                checks can fail.
 *
 * Output on COM1 is TAP-like, one line per check, then "1..N" and a
 * final PASS or FAIL line; the exit status comes from isa-debug-exit.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "nkvm-guest.h"

#define MB_BOOT_MAGIC           0x2badb002
#define MB_INFO_CMDLINE         (1 << 2)

#define VEC_NMI                 2
#define VEC_BP                  3
#define VEC_OF                  4
#define VEC_PF                  14
#define VEC_SOFT                0x80

/*
 * #PF error code bits (Intel SDM Vol. 3A 4.7, Figure 4-12; AMD APM
 * Vol. 2 8.4.2): P=0 means a not-present page, W/R=1 a write, U/S=0 a
 * supervisor access.
 */
#define PF_ERR_P                (1 << 0)
#define PF_ERR_W                (1 << 1)

#define RFLAGS_IF               (1 << 9)

typedef struct EventRecord {
    uint64_t error_code;
    uint64_t rip;
    uint64_t cs;
    uint64_t rflags;
    uint64_t cr2;
} EventRecord;

typedef struct Scenario {
    const char *name;
    void (*run)(void);
} Scenario;

static IdtGate idt[256] __attribute__((aligned(16)));

/*
 * Written by isr_dispatch() behind the compiler's back (from INT n, a
 * fault, or an NMI arriving in an assembly HLT loop), hence volatile.
 */
static volatile uint32_t vector_count[256];   /* updated by interrupts */
static volatile EventRecord last_event[256];  /* updated by interrupts */

/* Vectors that may fire right now; anything else is fatal. */
static volatile uint64_t allowed_vectors[4];  /* read by interrupts */

/* How many times each vector should have fired by the final check. */
static uint32_t expected_count[256];

static volatile uint64_t pf_expected_addr;  /* read by interrupts */
static uint8_t pf_page[PAGE_SIZE] __attribute__((aligned(PAGE_SIZE)));

static unsigned test_num;
static unsigned failures;
static bool wrong_on_purpose;
static uint64_t pattern_seed;
static char cmdline[256];

static void allow_vector(unsigned v)
{
    allowed_vectors[v / 64] |= 1ull << (v % 64);
}

static void forbid_vector(unsigned v)
{
    allowed_vectors[v / 64] &= ~(1ull << (v % 64));
}

static bool vector_allowed(unsigned v)
{
    return allowed_vectors[v / 64] & (1ull << (v % 64));
}

static void check_eq(const char *desc, uint64_t got, uint64_t expected)
{
    test_num++;
    if (got == expected) {
        kprintf("ok %u - %s\n", test_num, desc);
    } else {
        failures++;
        kprintf("not ok %u - %s: got 0x%lx expected 0x%lx\n",
                test_num, desc, got, expected);
    }
}

static void __attribute__((noreturn)) finish(void)
{
    kprintf("1..%u\n", test_num);
    if (failures) {
        kprintf("FAIL (%u of %u checks failed)\n", failures, test_num);
        guest_exit(NKVM_EXIT_FAIL);
    }
    kprintf("PASS\n");
    guest_exit(NKVM_EXIT_PASS);
}

static void __attribute__((noreturn)) fatal_event(IsrFrame *f, uint64_t cr2)
{
    test_num++;
    failures++;
    kprintf("not ok %u - unexpected vector %lu: error code 0x%lx, RIP 0x%lx, "
            "CS 0x%lx, RFLAGS 0x%lx, CR2 0x%lx\n", test_num, f->vector,
            f->error_code, f->rip, f->cs, f->rflags, cr2);
    finish();
}

void isr_dispatch(IsrFrame *f)
{
    unsigned v = f->vector & 0xff;
    volatile EventRecord *r = &last_event[v];   /* see last_event */
    uint64_t cr2 = v == VEC_PF ? read_cr2() : 0;

    vector_count[v]++;
    r->error_code = f->error_code;
    r->rip = f->rip;
    r->cs = f->cs;
    r->rflags = f->rflags;
    r->cr2 = cr2;

    /*
     * Returning from an unexpected fault would only repeat it, so any
     * vector nobody asked for ends the run.
     */
    if (!vector_allowed(v)) {
        fatal_event(f, cr2);
    }

    if (v == VEC_PF) {
        if ((cr2 & ~(uint64_t)(PAGE_SIZE - 1)) !=
            (pf_expected_addr & ~(uint64_t)(PAGE_SIZE - 1))) {
            fatal_event(f, cr2);
        }
        /* Map the page so that the faulting store is retried and works. */
        boot_pt[cr2 >> 12] |= PTE_P;
        invlpg(cr2);
    }
}

void (*isr_handler)(IsrFrame *f) = isr_dispatch;

static void idt_init(void)
{
    unsigned v;

    for (v = 0; v < 256; v++) {
        idt_set_gate(&idt[v], (uint64_t)isr_stubs + v * ISR_STUB_SIZE);
    }
    idt_load(idt, 256);
}

static void test_int80(void)
{
    volatile EventRecord *r = &last_event[VEC_SOFT];  /* interrupts */

    allow_vector(VEC_SOFT);
    trigger_int80();
    forbid_vector(VEC_SOFT);
    expected_count[VEC_SOFT]++;

    check_eq("int 0x80 delivered once", vector_count[VEC_SOFT], 1);
    check_eq("int 0x80 return RIP is after the 2-byte instruction",
             r->rip, (uint64_t)trigger_int80 + 2);
    check_eq("int 0x80 saved CS is the 64-bit code segment", r->cs,
             GDT_CODE64);
}

static void test_int3(void)
{
    volatile EventRecord *r = &last_event[VEC_BP];  /* interrupts */
    uint64_t expected_rip = (uint64_t)trigger_int3 + 1;

    allow_vector(VEC_BP);
    trigger_int3();
    forbid_vector(VEC_BP);
    expected_count[VEC_BP]++;

    check_eq("int3 delivered once as vector 3", vector_count[VEC_BP], 1);
    if (wrong_on_purpose) {
        /* expect-fail: pretend #BP were a fault, which it is not */
        check_eq("int3 return RIP (expect-fail: wrong on purpose, "
                 "expects the INT3 itself)", r->rip, (uint64_t)trigger_int3);
    } else {
        check_eq("int3 return RIP is after the 1-byte 0xcc", r->rip,
                 expected_rip);
    }
    check_eq("int3 saved CS is the 64-bit code segment", r->cs, GDT_CODE64);
}

static void test_into(void)
{
    volatile EventRecord *r = &last_event[VEC_OF];  /* interrupts */

    allow_vector(VEC_OF);
    trigger_into_compat();
    forbid_vector(VEC_OF);
    expected_count[VEC_OF]++;

    check_eq("into in compatibility mode delivered #OF (vector 4) once",
             vector_count[VEC_OF], 1);
    check_eq("into return RIP is after INTO", r->rip,
             (uint64_t)trigger_into_ret);
    check_eq("into saved CS is the compatibility-mode code segment", r->cs,
             GDT_CODE32);
}

static void test_pf(void)
{
    volatile EventRecord *r = &last_event[VEC_PF];  /* interrupts */
    /* volatile: triggers.S does the store; the reload must really load */
    volatile uint64_t *p = (volatile uint64_t *)(pf_page + 0x18);
    uint64_t addr = (uint64_t)p;
    const uint64_t value = 0x5a5aa5a5c3c33c3cull;

    /* boot.S maps only the first 2 MiB with 4 KiB pages */
    if (addr >= 0x200000) {
        check_eq("#PF test page lies in the 4 KiB-mapped region",
                 addr, 0x200000);
        return;
    }

    *p = 0;
    boot_pt[addr >> 12] &= ~(uint64_t)PTE_P;
    invlpg(addr);

    pf_expected_addr = addr;
    allow_vector(VEC_PF);
    trigger_pf_write(p, value);
    forbid_vector(VEC_PF);
    expected_count[VEC_PF]++;

    check_eq("#PF delivered once", vector_count[VEC_PF], 1);
    check_eq("#PF CR2 is the faulting address", r->cr2, addr);
    check_eq("#PF error code is write to a not-present page (0x2)",
             r->error_code & 0xffffffff, PF_ERR_W);
    check_eq("#PF return RIP is the faulting instruction", r->rip,
             (uint64_t)trigger_pf_insn);
    check_eq("#PF saved CS is the 64-bit code segment", r->cs, GDT_CODE64);
    check_eq("#PF retried write stored the value", *p, value);
    check_eq("#PF handler left the page present",
             boot_pt[addr >> 12] & PTE_P, PTE_P);
}

static void test_nmi(const char *ready)
{
    volatile EventRecord *r = &last_event[VEC_NMI];  /* interrupts */

    /*
     * The host injects the NMI only after reading this line, and the
     * few instructions from here to HLT take far less time than its
     * serial read plus QMP round trip, so the NMI is expected to end
     * the HLT itself; hence the exact return RIP below.
     */
    allow_vector(VEC_NMI);
    kprintf("READY %s\n", ready);
    wait_for_nmi(&vector_count[VEC_NMI]);
    forbid_vector(VEC_NMI);
    expected_count[VEC_NMI]++;

    check_eq("NMI delivered once", vector_count[VEC_NMI], 1);
    check_eq("NMI return RIP is right after HLT", r->rip,
             (uint64_t)wait_for_nmi_after_hlt);
    check_eq("NMI saved CS is the 64-bit code segment", r->cs, GDT_CODE64);
    check_eq("NMI arrived with interrupts disabled (RFLAGS.IF=0)",
             r->rflags & RFLAGS_IF, 0);
}

static void check_no_other_vectors(void)
{
    unsigned v;

    for (v = 0; v < 256; v++) {
        if (vector_count[v] != expected_count[v]) {
            kprintf("# vector %u fired %u times, expected %u\n",
                    v, vector_count[v], expected_count[v]);
            check_eq("no unexpected vector fired (count of the vector "
                     "named above)", vector_count[v], expected_count[v]);
            return;
        }
    }
    check_eq("no unexpected vector fired", 0, 0);
}

static void run_sync_checks(void)
{
    test_int80();
    test_int3();
    test_into();
    test_pf();
}

/* splitmix64: a cheap, well-mixed function of address and seed */
static uint64_t pattern_word(uint64_t addr)
{
    uint64_t z = addr + pattern_seed + 0x9e3779b97f4a7c15ull;

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void pattern_fill(void)
{
    uint64_t a;

    for (a = PATTERN_BASE; a < PATTERN_BASE + PATTERN_SIZE; a += 8) {
        *(volatile uint64_t *)a = pattern_word(a);   /* raw RAM */
    }
}

static void pattern_check(void)
{
    uint64_t a, bad = 0, first_bad = 0;

    for (a = PATTERN_BASE; a < PATTERN_BASE + PATTERN_SIZE; a += 8) {
        if (*(volatile uint64_t *)a != pattern_word(a)) {   /* raw RAM */
            if (!bad) {
                first_bad = a;
            }
            bad++;
        }
    }
    if (bad) {
        kprintf("# first bad word at 0x%lx\n", first_bad);
    }
    check_eq("memory pattern written before migration is intact "
             "(bad 8-byte words)", bad, 0);
}

static void scenario_smoke(void)
{
    run_sync_checks();
    test_nmi("nmi");
    check_no_other_vectors();
}

static void scenario_migrate(void)
{
    run_sync_checks();
    /* Seeded per boot so a stale image from another run cannot pass. */
    pattern_seed = rdtsc();
    pattern_fill();
    kprintf("# pattern: %u MiB at 0x%x, seed 0x%lx\n",
            PATTERN_SIZE >> 20, PATTERN_BASE, pattern_seed);
    test_nmi("migrate");
    pattern_check();
    check_no_other_vectors();
}

static void scenario_expect_fail(void)
{
    wrong_on_purpose = true;
    run_sync_checks();
    check_no_other_vectors();
}

static void scenario_svm_nrip_main(void)
{
    scenario_svm_nrip(check_eq);    /* svm-nrip.c */
    check_no_other_vectors();
}

static void scenario_svm_fidelity_main(void)
{
    scenario_svm_fidelity(check_eq);    /* svm-fidelity.c */
    check_no_other_vectors();
}

static void scenario_vmx_inject_main(void)
{
    scenario_vmx_inject(check_eq);      /* vmx-inject.c */
    check_no_other_vectors();
}

/* svm-timer.c installs its own IDT, as events.c does */
static void scenario_svm_timer_main(void)
{
    scenario_svm_timer(check_eq);
}

/* events.c: they install their own IDT, so no main.c vector fires */
static void scenario_events_nmi_held_main(void)
{
    scenario_events_nmi_held(check_eq);
    check_no_other_vectors();
}

static void scenario_events_stream_main(void)
{
    scenario_events_stream(check_eq);
    check_no_other_vectors();
}

static void scenario_torture_main(void)
{
    uint64_t bad = scenario_torture(cmdline);   /* torture.c */

    check_eq("torture: nothing lost, duplicated or misdirected", bad, 0);
}

static const Scenario scenarios[] = {
    { "smoke", scenario_smoke },
    { "migrate", scenario_migrate },
    { "expect-fail", scenario_expect_fail },
    { "svm-nrip", scenario_svm_nrip_main },
    { "svm-fidelity", scenario_svm_fidelity_main },
    { "svm-timer", scenario_svm_timer_main },
    { "vmx-inject", scenario_vmx_inject_main },
    { "torture", scenario_torture_main },
    { "events-nmi-held", scenario_events_nmi_held_main },
    { "events-stream", scenario_events_stream_main },
};

static bool word_eq(const char *w, size_t len, const char *s)
{
    return strlen(s) == len && !memcmp(w, s, len);
}

/*
 * QEMU passes "<kernel file name> <-append string>" (hw/i386/multiboot.c),
 * as GRUB does, so the scenario is the second word.
 */
static const char *scenario_word(size_t *len)
{
    const char *p = cmdline;

    while (*p && *p != ' ') {
        p++;
    }
    while (*p == ' ') {
        p++;
    }
    *len = 0;
    while (p[*len] && p[*len] != ' ') {
        (*len)++;
    }
    return p;
}

void guest_main(uint32_t magic, uint32_t mbi)
{
    const uint32_t *info = (const uint32_t *)(uint64_t)mbi;
    const char *word;
    size_t len, i;

    serial_init();
    idt_init();
    kprintf("# nkvm-guest: image %p-%p\n", __image_start, __image_end);

    check_eq("booted by a Multiboot loader (EAX magic)", magic,
             MB_BOOT_MAGIC);
    if (magic != MB_BOOT_MAGIC) {
        finish();
    }
    if (info[0] & MB_INFO_CMDLINE) {
        const char *src = (const char *)(uint64_t)info[4];

        for (i = 0; i < sizeof(cmdline) - 1 && src[i]; i++) {
            cmdline[i] = src[i];
        }
        cmdline[i] = '\0';
    }
    kprintf("# cmdline: %s\n", cmdline);

    word = scenario_word(&len);
    for (i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++) {
        if (word_eq(word, len, scenarios[i].name)) {
            kprintf("# scenario: %s\n", scenarios[i].name);
            scenarios[i].run();
            finish();
        }
    }
    scenario_bench(word, len);  /* bench.c: returns only if not its name */
    kprintf("# unknown scenario; pass one of: smoke migrate expect-fail\n");
    check_eq("scenario named on the command line is known", 0, 1);
    finish();
}
