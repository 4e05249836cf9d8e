/*
 * nkvm-guest: "svm-timer" scenario, L1's timer while L2 loops on I/O
 *
 * The shape of kvm-unit-tests' reg_corruption, written from the APM:
 * L1 (this guest) runs its x2APIC timer in periodic mode and an L2 that
 * loops on INSB from port 0x4d0, with the INTR intercept and
 * V_INTR_MASKING set (AMD APM vol. 2, 15.21.1-15.21.3: a physical
 * interrupt then exits with 60h and L1's own RFLAGS.IF masks it).  After
 * each INTR exit L1 opens a one-instruction window (STI; NOP; CLI) and
 * takes its tick there, the way that test does, until it has counted
 * SVM_TIMER_TICKS ticks.
 *
 * A lab that loses L1's interrupts leaves L1 waiting forever: the host
 * sees a timeout.  The guest also checks that L2 was only ever left by
 * INTR exits, never with RIP at an INSB that had already run (what
 * reg_corruption looks for), and that L1's handler saw no other vector.
 * It prints how many ticks a single window took: in a slow lab the timer
 * can fire again before L1 closes its window, so a count that steps by
 * more than one is normal there, and a check for an exact total is a
 * race.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "svm-lib.h"

#define SVM_TIMER_TICKS         2000
#define SVM_TIMER_VECTOR        0x40
#define SVM_TIMER_SPURIOUS      0xff
/* 200 µs at the 1 GHz APIC bus clock QEMU and KVM model, divider 1 */
#define SVM_TIMER_INITIAL       200000
#define SVM_TIMER_PORT          0x4d0   /* ELCR: harmless to read */
#define SVM_TIMER_L2_VECTOR     0x50

#define VMCB_INT_CTL            0x060
#define V_INTR_MASKING          (1u << 24)

static uint8_t vmcb[PAGE_SIZE] __attribute__((aligned(PAGE_SIZE)));
static uint8_t hsave[PAGE_SIZE] __attribute__((aligned(PAGE_SIZE)));
static uint8_t iopm[3 * PAGE_SIZE] __attribute__((aligned(PAGE_SIZE)));
static uint8_t msrpm[2 * PAGE_SIZE] __attribute__((aligned(PAGE_SIZE)));
static uint8_t l2_stack[PAGE_SIZE] __attribute__((aligned(PAGE_SIZE)));
static IdtGate timer_idt[256] __attribute__((aligned(16)));

volatile uint64_t svm_timer_ticks;          /* L1's timer handler writes */
volatile uint64_t svm_timer_bad_vector;     /* L1's other handlers write */
volatile uint8_t svm_timer_io_byte;         /* L2's INSB writes */
volatile uint64_t svm_timer_l2_isr_count;   /* L2's handler writes */
static IdtGate l2_idt[256] __attribute__((aligned(16)));

asm(".text\n"
    "svm_timer_stub:\n"
    "    push %rax\n"
    "    push %rcx\n"
    "    push %rdx\n"
    "    lock incq svm_timer_ticks(%rip)\n"
    X2APIC_EOI_ASM
    "    pop %rdx\n"
    "    pop %rcx\n"
    "    pop %rax\n"
    "    iretq\n"
    "svm_timer_spurious_stub:\n"
    "    iretq\n"
    "svm_timer_bad_stub:\n"
    "    lock incq svm_timer_bad_vector(%rip)\n"
    "    iretq\n"
    /*
     * L2's handler for the injected interrupt: count, spin long enough
     * for several of L1's ticks to arrive, exit.
     */
    "svm_timer_l2_isr:\n"
    "    lock incq svm_timer_l2_isr_count(%rip)\n"
    "    mov $100000000, %ecx\n"
    "2:  dec %ecx\n"
    "    jnz 2b\n"
    "    vmmcall\n"
    "    ud2\n"
    /* L2: INSB from an ELCR port, forever (no port is intercepted) */
    "svm_timer_l2:\n"
    "1:  mov $0x4d0, %dx\n"
    "    lea svm_timer_io_byte(%rip), %rdi\n"
    "    movb $0xaa, (%rdi)\n"
    "svm_timer_l2_insb:\n"
    "    insb\n"
    "    jmp 1b\n");

static void timer_idt_init(void)
{
    unsigned v;

    for (v = 0; v < 256; v++) {
        idt_set_gate(&timer_idt[v], ASM_ADDR(svm_timer_bad_stub));
    }
    idt_set_gate(&timer_idt[SVM_TIMER_VECTOR], ASM_ADDR(svm_timer_stub));
    idt_set_gate(&timer_idt[SVM_TIMER_SPURIOUS],
                 ASM_ADDR(svm_timer_spurious_stub));
    idt_load(timer_idt, 256);
}

static void timer_start(void)
{
    wrmsr(MSR_APIC_BASE, rdmsr(MSR_APIC_BASE) | APIC_BASE_EN |
          APIC_BASE_EXTD);
    wrmsr(MSR_X2APIC_SVR, APIC_SVR_ENABLE | SVM_TIMER_SPURIOUS);
    /* SeaBIOS leaves the PIT on the 8259: the timer must be alone */
    outb(PIC1_DATA, 0xff);
    outb(PIC2_DATA, 0xff);
    wrmsr(MSR_X2APIC_DIV_CONF, APIC_DIV_BY_1);
    wrmsr(MSR_X2APIC_LVT_TIMER, APIC_LVT_PERIODIC | SVM_TIMER_VECTOR);
    wrmsr(MSR_X2APIC_INIT_COUNT, SVM_TIMER_INITIAL);
}

static void timer_stop(void)
{
    wrmsr(MSR_X2APIC_LVT_TIMER, APIC_LVT_MASKED | SVM_TIMER_VECTOR);
    wrmsr(MSR_X2APIC_INIT_COUNT, 0);
}

static void vmcb_init(void)
{
    memset(vmcb, 0, sizeof(vmcb));
    memset(iopm, 0, sizeof(iopm));
    memset(msrpm, 0, sizeof(msrpm));
    vmcb_w64(vmcb, VMCB_IOPM_BASE, (uint64_t)iopm);
    vmcb_w64(vmcb, VMCB_MSRPM_BASE, (uint64_t)msrpm);
    vmcb_w32(vmcb, VMCB_ASID, 1);
    vmcb_w32(vmcb, VMCB_INT_CTL, V_INTR_MASKING);
    vmcb_w64(vmcb, VMCB_INTERCEPT, INTERCEPT(EXIT_INTR) |
             INTERCEPT(EXIT_VMRUN) | INTERCEPT(EXIT_VMMCALL));
    svm_vmcb_mirror_l1(vmcb);
    /* L2 never takes an interrupt itself: V_INTR_MASKING hides L1's */
    vmcb_w32(vmcb, VMCB_IDTR + 4, 0);
    vmcb_w64(vmcb, VMCB_IDTR + 8, 0);
    vmcb_w64(vmcb, VMCB_RIP, ASM_ADDR(svm_timer_l2));
    vmcb_w64(vmcb, VMCB_RSP, (uint64_t)(l2_stack + sizeof(l2_stack)));
}

/* VMRUN with L1's IF set, so that the physical interrupt exits (15.21.3) */
static uint64_t vmrun_if_set(void)
{
    uint64_t rax = (uint64_t)vmcb;

    asm volatile("clgi\n\t"
                 "sti\n\t"
                 "vmrun %%rax\n\t"
                 "cli\n\t"
                 "stgi"
                 : "+a"(rax)
                 :
                 : "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "r8", "r9",
                   "r10", "r11", "r12", "r13", "r14", "r15", "memory",
                   "cc");
    return vmcb_r64(vmcb, VMCB_EXIT_CODE);
}

/*
 * An external interrupt injected through EVENTINJ (15.20) is delivered
 * once.  TCG used to leave the injected vector behind as a pending
 * exception and delivered it a second time when something asked the
 * vCPU to leave its loop before anything else had reset it: in the lab,
 * two deliveries in 944,308.  The host makes that happen here: it
 * stops and continues the VM while L2's handler spins (SPINNING below).
 * L1's timer is not running yet, because the APIC's poll request after a
 * tick would reset the stale vector first.
 */
static uint64_t inject_once(void)
{
    unsigned v;

    for (v = 0; v < 256; v++) {
        idt_set_gate(&l2_idt[v], ASM_ADDR(svm_timer_bad_stub));
    }
    idt_set_gate(&l2_idt[SVM_TIMER_L2_VECTOR], ASM_ADDR(svm_timer_l2_isr));
    vmcb_init();
    vmcb_w32(vmcb, VMCB_IDTR + 4, sizeof(l2_idt) - 1);
    vmcb_w64(vmcb, VMCB_IDTR + 8, (uint64_t)l2_idt);
    vmcb_w32(vmcb, VMCB_EVENT_INJ, EVTINJ_VALID | EVTINJ_INTR |
             SVM_TIMER_L2_VECTOR);
    kprintf("SPINNING: L2's handler for the injected vector\n");
    svm_vmrun(vmcb);
    return vmcb_r64(vmcb, VMCB_EXIT_CODE);
}

void scenario_svm_timer(void (*check)(const char *desc, uint64_t got,
                                      uint64_t expected))
{
    uint32_t rev, asids, features, a, b, c, d;
    uint64_t windows = 0, stepped = 0, widest = 0, other = 0, code = 0;
    uint64_t corrupt = 0;
    uint64_t before, took;

    cpuid(1, &a, &b, &c, &d);
    if (!(c & CPUID_1_ECX_X2APIC) ||
        !svm_probe(&rev, &asids, &features)) {
        check("CPUID has x2APIC and SVM", 0, 1);
        return;
    }
    timer_idt_init();
    svm_enable(hsave);
    check("EVENTINJ INTR, VM stopped meanwhile: L2's handler exits by "
          "VMMCALL", inject_once(), EXIT_VMMCALL);
    check("EVENTINJ INTR, VM stopped meanwhile: delivered once",
          svm_timer_l2_isr_count, 1);

    vmcb_init();
    timer_start();

    while (svm_timer_ticks < SVM_TIMER_TICKS) {
        /* progress, so that a timeout shows whether the ticks stopped */
        if (windows % 256 == 0) {
            kprintf("# progress: %lu ticks, %lu INTR exits\n",
                    svm_timer_ticks, windows);
        }
        code = vmrun_if_set();
        if (code != EXIT_INTR) {
            other++;
            break;
        }
        windows++;
        /* stopped at the INSB, the INSB must not have run (15.21.3) */
        if (vmcb_r64(vmcb, VMCB_RIP) == ASM_ADDR(svm_timer_l2_insb) &&
            svm_timer_io_byte != 0xaa) {
            corrupt++;
        }
        before = svm_timer_ticks;
        asm volatile("sti; nop; cli" : : : "memory");
        took = svm_timer_ticks - before;
        if (took > 1) {
            stepped++;
        }
        if (took > widest) {
            widest = took;
        }
    }
    timer_stop();

    kprintf("# %lu ticks in %lu INTR exits; %lu windows took more than "
            "one tick, the most was %lu\n", svm_timer_ticks, windows,
            stepped, widest);
    check("L2 was left by INTR exits only (last exit code)", other ? code
          : EXIT_INTR, EXIT_INTR);
    check("L1's timer reached the tick count", svm_timer_ticks >=
          SVM_TIMER_TICKS, 1);
    check("no INTR exit at the INSB after it had run", corrupt, 0);
    check("no other vector reached L1", svm_timer_bad_vector, 0);
}
