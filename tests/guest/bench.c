/*
 * nkvm-guest: exit-heavy loops for the benchmark (tests/lab/bench.py)
 *
 * Each scenario prints "READY <name> counter=0x<addr>" and then loops
 * forever, incrementing a 64-bit counter at that guest-physical address
 * once per iteration.  The host reads the counter twice through HMP
 * "xp" and divides by the wall time in between, so the guest needs no
 * clock of its own (its TSC is meaningless under a nested TCG lab) and
 * prints nothing while it is measured (serial output would add exits
 * of its own).  The host ends the run by quitting QEMU.
 *
 *   bench-pio     OUT to port 0x80 in a tight loop: every iteration is a
 *                 userspace exit (KVM_EXIT_IO), the path QEMU's
 *                 accelerator code sees.
 *   bench-ipi     x2APIC self-IPI, handled with IF=1 and EOIed: every
 *                 iteration is two MSR exits and one injected interrupt,
 *                 all inside KVM.
 *   bench-nested  a guest hypervisor: VMRUN an L2 that does VMMCALL in
 *                 a loop; every iteration is a nested #VMEXIT reflected
 *                 to this guest and an emulated VMRUN.
 *   bench-nmi     for "stopped with events in flight": waits in HLT with
 *                 IF=0; its NMI handler counts and then spins without
 *                 IRET, so a second inject-nmi stays pending, blocked.
 *
 * The scenarios install their own IDT: main.c's handler treats every
 * vector it did not arm as a failure.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "svm-lib.h"

#define BENCH_PIO_PORT          0x80    /* POST code port, a no-op device */
#define BENCH_IPI_VECTOR        0x40
#define BENCH_SPURIOUS_VECTOR   0xff

#define VMMCALL_LEN             3       /* 0f 01 d9 */

/*
 * What the host reads: index 0 is the iteration count.  Written from
 * interrupt handlers and by a loop the compiler cannot see end, so
 * volatile; read by the host through QEMU, never by this code.
 */
volatile uint64_t bench_counter[8] __attribute__((aligned(64)));

static IdtGate bench_idt[256] __attribute__((aligned(16)));

/*
 * The handlers are plain assembly: the IPI one must be as short as the
 * hardware allows, or the guest would measure its own handler instead of
 * the exits.  bench_bad_stub ends the run with FAIL through
 * isa-debug-exit (port NKVM_EXIT_PORT) for any vector nobody expected.
 */

asm(".text\n"
    "bench_ipi_stub:\n"
    "    push %rax\n"
    "    push %rcx\n"
    "    push %rdx\n"
    "    lock incq bench_counter(%rip)\n"
    X2APIC_EOI_ASM
    "    pop %rdx\n"
    "    pop %rcx\n"
    "    pop %rax\n"
    "    iretq\n"
    "bench_nmi_stub:\n"
    "    lock incq bench_counter(%rip)\n"
    /* No IRET: NMIs stay blocked, a later one stays pending. */
    "1:  pause\n"
    "    jmp 1b\n"
    "bench_bad_stub:\n"
    "    mov $0x11, %al\n"              /* NKVM_EXIT_FAIL */
    "    out %al, $0xf4\n"              /* NKVM_EXIT_PORT */
    "2:  cli\n"
    "    hlt\n"
    "    jmp 2b\n"
    /* L2 of bench-nested: one VMMCALL per iteration, nothing else. */
    "bench_l2_loop:\n"
    "    vmmcall\n"
    "    jmp bench_l2_loop\n");

/* Bare stubs rather than isr.S's: the loops measure exit cost, not C. */
static void bench_idt_init(void)
{
    unsigned v;

    for (v = 0; v < 256; v++) {
        idt_set_gate(&bench_idt[v], ASM_ADDR(bench_bad_stub));
    }
    idt_set_gate(&bench_idt[2], ASM_ADDR(bench_nmi_stub));
    idt_set_gate(&bench_idt[BENCH_IPI_VECTOR], ASM_ADDR(bench_ipi_stub));
    /* A spurious interrupt needs no EOI; treat it as harmless. */
    idt_set_gate(&bench_idt[BENCH_SPURIOUS_VECTOR],
                 ASM_ADDR(bench_ipi_stub));
    idt_load(bench_idt, 256);
}

static void bench_ready(const char *name)
{
    bench_counter[0] = 0;
    kprintf("READY %s counter=0x%lx\n", name, (uint64_t)&bench_counter[0]);
}

static void __attribute__((noreturn)) bench_fail(const char *why)
{
    kprintf("not ok - %s\nFAIL\n", why);
    guest_exit(NKVM_EXIT_FAIL);
}

static void __attribute__((noreturn)) bench_pio(void)
{
    bench_ready("bench-pio");
    for (;;) {
        outb(BENCH_PIO_PORT, 0);
        bench_counter[0]++;
    }
}

static void __attribute__((noreturn)) bench_ipi(void)
{
    uint32_t a, b, c, d;

    cpuid(1, &a, &b, &c, &d);
    if (!(c & CPUID_1_ECX_X2APIC)) {
        bench_fail("bench-ipi needs x2APIC (CPUID.1:ECX[21])");
    }
    wrmsr(MSR_APIC_BASE, rdmsr(MSR_APIC_BASE) | APIC_BASE_EN |
          APIC_BASE_EXTD);
    wrmsr(MSR_X2APIC_SVR, APIC_SVR_ENABLE | BENCH_SPURIOUS_VECTOR);
    /*
     * SeaBIOS leaves the PIT ticking through the 8259 (IRQ 0 on vector
     * 8): mask both PICs so that the self-IPI is the only interrupt.
     */
    outb(PIC1_DATA, 0xff);
    outb(PIC2_DATA, 0xff);
    bench_ready("bench-ipi");
    asm volatile("sti");
    for (;;) {
        /* The interrupt arrives right after the WRMSR, IF being set. */
        wrmsr(MSR_X2APIC_SELF_IPI, BENCH_IPI_VECTOR);
    }
}

static void __attribute__((noreturn)) bench_nested(void)
{
    static uint8_t vmcb[PAGE_SIZE] __attribute__((aligned(PAGE_SIZE)));
    static uint8_t hsave[PAGE_SIZE] __attribute__((aligned(PAGE_SIZE)));
    /* All zero: no port or MSR intercepts, but KVM checks the addresses. */
    static uint8_t iopm[3 * PAGE_SIZE] __attribute__((aligned(PAGE_SIZE)));
    static uint8_t msrpm[2 * PAGE_SIZE] __attribute__((aligned(PAGE_SIZE)));
    static uint8_t l2_stack[PAGE_SIZE] __attribute__((aligned(16)));
    uint32_t rev, asids, features;
    uint64_t code;

    if (!svm_probe(&rev, &asids, &features)) {
        bench_fail("bench-nested needs SVM (-cpu ...,+svm)");
    }
    svm_enable(hsave);
    memset(vmcb, 0, sizeof(vmcb));
    vmcb_w64(vmcb, VMCB_IOPM_BASE, (uint64_t)iopm);
    vmcb_w64(vmcb, VMCB_MSRPM_BASE, (uint64_t)msrpm);
    vmcb_w32(vmcb, VMCB_ASID, 1);
    /* VMRUN must be intercepted (APM vol. 2 15.5.1), VMMCALL is the loop */
    vmcb_w64(vmcb, VMCB_INTERCEPT,
             INTERCEPT(EXIT_VMRUN) | INTERCEPT(EXIT_VMMCALL));
    svm_vmcb_mirror_l1(vmcb);
    /* L2 runs with IF=0 and never takes an interrupt: IDTR is a dummy. */
    vmcb_w32(vmcb, VMCB_IDTR + 4, 0);
    vmcb_w64(vmcb, VMCB_IDTR + 8, 0);
    vmcb_w64(vmcb, VMCB_RIP, ASM_ADDR(bench_l2_loop));
    vmcb_w64(vmcb, VMCB_RSP, (uint64_t)(l2_stack + sizeof(l2_stack)));

    bench_ready("bench-nested");
    for (;;) {
        svm_vmrun(vmcb);
        code = vmcb_r64(vmcb, VMCB_EXIT_CODE);
        if (code != EXIT_VMMCALL) {
            kprintf("# bench-nested: exit code 0x%lx at RIP 0x%lx\n", code,
                    vmcb_r64(vmcb, VMCB_RIP));
            bench_fail("bench-nested: L2 exited other than by VMMCALL");
        }
        vmcb_w64(vmcb, VMCB_RIP, vmcb_r64(vmcb, VMCB_RIP) + VMMCALL_LEN);
        bench_counter[0]++;
    }
}

static void __attribute__((noreturn)) bench_nmi(void)
{
    bench_ready("bench-nmi");
    for (;;) {
        asm volatile("cli; hlt");
    }
}

bool scenario_bench(const char *word, size_t len)
{
    static const struct {
        const char *name;
        void (*run)(void);
    } table[] = {
        { "bench-pio", bench_pio },
        { "bench-ipi", bench_ipi },
        { "bench-nested", bench_nested },
        { "bench-nmi", bench_nmi },
    };
    size_t i;

    for (i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        if (strlen(table[i].name) == len &&
            !memcmp(table[i].name, word, len)) {
            kprintf("# scenario: %s\n", table[i].name);
            bench_idt_init();
            table[i].run();
        }
    }
    return false;
}
