/*
 * nkvm-guest: freestanding x86-64 test guest for qemu-nested-kvm
 *
 * Definitions shared by the assembly entry code, the C checks and (by
 * hand, see tests/functional/nkvm.py) the Python harness.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef NKVM_GUEST_H
#define NKVM_GUEST_H

/*
 * isa-debug-exit (-device isa-debug-exit,iobase=0xf4,iosize=0x04):
 * writing V to the port makes QEMU exit with status (V << 1) | 1.
 * Both statuses are odd and neither is 1, so they cannot be confused
 * with QEMU's own exit statuses (0 = guest shutdown or triple fault
 * under -no-reboot, 1 = QEMU error).  Keep in sync with nkvm.py.
 */
#define NKVM_EXIT_PORT          0xf4
#define NKVM_EXIT_PASS          0x10    /* QEMU exit status 33 */
#define NKVM_EXIT_FAIL          0x11    /* QEMU exit status 35 */

#define NKVM_COM1               0x3f8

/* GDT selectors (boot.S builds the table). */
#define GDT_CODE64              0x08
#define GDT_DATA                0x10
#define GDT_CODE32              0x18    /* 32-bit compatibility-mode code */

/* Control register and MSR bits used by boot.S (Intel SDM Vol. 3A 2.5). */
#define CR0_PE                  (1 << 0)
#define CR0_PG                  (1 << 31)
#define CR4_PAE                 (1 << 5)
#define MSR_EFER                0xc0000080
#define EFER_LME                (1 << 8)

/* Page table entry bits (Intel SDM Vol. 3A 4.5, Table 4-19/4-20). */
#define PTE_P                   0x001
#define PTE_W                   0x002
#define PTE_U                   0x004
#define PTE_PS                  0x080

#define PAGE_SIZE               4096

/* Distance between the interrupt entry stubs in isr.S */
#define ISR_STUB_SIZE           16

/*
 * Memory used by the "migrate" scenario for its pattern: 8 MiB starting
 * at 16 MiB, well above the image (loaded at 1 MiB) and below the 64 MiB
 * the harness gives the VM.
 */
#define PATTERN_BASE            0x01000000
#define PATTERN_SIZE            0x00800000

/*
 * Application processors (smp.S, smp.c): the page their real-mode
 * start-up code is copied to (a start-up IPI names a page below 1 MiB),
 * and how many CPUs a scenario may use.
 */
#define SMP_TRAMPOLINE          0x8000
#define SMP_MAX_CPUS            8

#ifndef __ASSEMBLER__

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * What an interrupt stub leaves on the stack, lowest address first.
 * isr.S pushes the general registers and the vector, and for vectors
 * without a CPU-pushed error code a zero in its place; the rest is the
 * IA-32e interrupt stack frame (Intel SDM Vol. 3A 6.14.2, Figure 6-9).
 */
typedef struct IsrFrame {
    uint64_t r15, r14, r13, r12, r11, r10, r9, r8;
    uint64_t rbp, rdi, rsi, rdx, rcx, rbx, rax;
    uint64_t vector;
    uint64_t error_code;
    uint64_t rip;
    uint64_t cs;
    uint64_t rflags;
    uint64_t rsp;
    uint64_t ss;
} IsrFrame;

/* A 64-bit IDT gate (Intel SDM Vol. 3A 6.14.1, Figure 6-8). */
typedef struct IdtGate {
    uint16_t offset_lo;
    uint16_t selector;
    uint8_t ist;
    uint8_t type_attr;
    uint16_t offset_mid;
    uint32_t offset_hi;
    uint32_t reserved;
} __attribute__((packed)) IdtGate;

/* lib.c */
void idt_set_gate(IdtGate *gate, uint64_t handler);
void idt_load(const IdtGate *idt, size_t entries);
void serial_init(void);
void serial_putc(char c);
void kprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void kvprintf(const char *fmt, va_list ap);
void *memset(void *s, int c, size_t n);
void *memcpy(void *dst, const void *src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
void __attribute__((noreturn)) guest_exit(int value);
/*
 * check(), with "name: what" as the description (cut to fit 160 bytes;
 * name is a short case name).
 */
void check_named(void (*check)(const char *, uint64_t, uint64_t),
                 const char *name, const char *what, uint64_t got,
                 uint64_t expected);

static inline void outb(uint16_t port, uint8_t v)
{
    asm volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

static inline void outl(uint16_t port, uint32_t v)
{
    asm volatile("outl %0, %1" : : "a"(v), "Nd"(port));
}

static inline uint8_t inb(uint16_t port)
{
    uint8_t v;

    asm volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}

static inline uint64_t read_cr2(void)
{
    uint64_t v;

    asm volatile("mov %%cr2, %0" : "=r"(v));
    return v;
}

static inline void invlpg(uint64_t addr)
{
    asm volatile("invlpg (%0)" : : "r"(addr) : "memory");
}

static inline uint64_t rdtsc(void)
{
    uint32_t lo, hi;

    asm volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return ((uint64_t)hi << 32) | lo;
}

static inline void cpuid(uint32_t leaf, uint32_t *a, uint32_t *b,
                         uint32_t *c, uint32_t *d)
{
    asm volatile("cpuid" : "=a"(*a), "=b"(*b), "=c"(*c), "=d"(*d)
                 : "a"(leaf), "c"(0));
}

static inline uint64_t rdmsr(uint32_t msr)
{
    uint32_t lo, hi;

    asm volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
    return ((uint64_t)hi << 32) | lo;
}

static inline void wrmsr(uint32_t msr, uint64_t v)
{
    asm volatile("wrmsr" : : "c"(msr), "a"((uint32_t)v),
                 "d"((uint32_t)(v >> 32)));
}

/* boot.S */
extern uint64_t boot_pt[512];           /* 4 KiB PTEs for 0..2 MiB */
extern char __image_start[], __image_end[];

/*
 * isr.S: 256 stubs, ISR_STUB_SIZE bytes apart, that build an IsrFrame
 * and call isr_handler (isr_dispatch of main.c unless a scenario
 * installs its own).
 */
extern char isr_stubs[];
extern void (*isr_handler)(IsrFrame *f);

/* triggers.S: each label marks the instruction after (or at) the event */
void trigger_int80(void);
extern char trigger_int80_ret[];
void trigger_int3(void);
extern char trigger_int3_ret[];
void trigger_into_compat(void);
extern char trigger_into_ret[];
/* volatile: *addr is stored to by the assembly, behind the compiler */
void trigger_pf_write(volatile uint64_t *addr, uint64_t value);
extern char trigger_pf_insn[];
void wait_for_nmi(volatile uint32_t *count); /* NMI handler writes */
extern char wait_for_nmi_after_hlt[];

/* svm-nrip.c: the "svm-nrip" scenario, reporting through check */
void scenario_svm_nrip(void (*check)(const char *desc, uint64_t got,
                                     uint64_t expected));

/* svm-fidelity.c: SVM behaviours the lab relies on (guest as hypervisor) */
void scenario_svm_fidelity(void (*check)(const char *desc, uint64_t got,
                                         uint64_t expected));

/*
 * vmx-inject.c: the "vmx-inject" scenario, one VMX injection of each
 * event type (docs/vmx-torture.rst)
 */
void scenario_vmx_inject(void (*check)(const char *desc, uint64_t got,
                                       uint64_t expected));

/* svm-timer.c: L1's periodic timer while L2 loops on I/O (INTR exits) */
void scenario_svm_timer(void (*check)(const char *desc, uint64_t got,
                                      uint64_t expected));

/*
 * events.S: entry stubs and triggers of the events-* scenarios.  The
 * counters they wait on are written by interrupt handlers and the
 * addresses they store to are MMIO or watched, hence volatile.
 */
extern volatile uint32_t events_passes;     /* written by events.S */
void events_wait_nmi(volatile uint32_t *count, /* NMI handler writes */
                     uint32_t target);
extern char events_wait_nmi_after_hlt[];
void events_self_nmi(volatile uint32_t *icr_lo, /* APIC MMIO */
                     uint32_t value,
                     volatile uint32_t *count, /* NMI handler writes */
                     uint32_t target);
extern char events_self_nmi_window[], events_self_nmi_window_end[];
void events_pf_write(volatile uint64_t *addr, /* stored behind C's back */
                     uint64_t value);
extern char events_pf_insn[];
void events_single_step(void);
extern char events_step_ret[];
void events_data_write(volatile uint32_t *addr); /* watched by DR0 */
extern char events_data_ret[];
void events_sti_hlt(volatile uint32_t *count, /* handler writes */
                    uint32_t target);
extern char events_hlt_insn[], events_hlt_ret[];

/* events.c: the events-nmi-held and events-stream scenarios */
void events_dispatch(IsrFrame *f);
void scenario_events_nmi_held(void (*check)(const char *desc, uint64_t got,
                                            uint64_t expected));
void scenario_events_stream(void (*check)(const char *desc, uint64_t got,
                                          uint64_t expected));

/*
 * torture.c: the "torture" scenario; cmdline may hold rounds=N and
 * seed=N.  Returns how many events went wrong (0: all right).
 */
uint64_t scenario_torture(const char *cmdline);

/*
 * bench.c: runs the bench-* scenario named by word (len bytes) and never
 * returns; returns false if word names none of them.
 */
bool scenario_bench(const char *word, size_t len);

/*
 * smp.c: x2apic_enable() switches this CPU's local APIC to x2APIC mode
 * and software-enables it (false if CPUID has no x2APIC);
 * x2apic_id() reads its ID.  smp_start(n, fn) starts CPUs 1..n-1 (APIC
 * IDs 1..n-1, QEMU's default numbering), one after the other, each in
 * x2APIC mode running fn(index) on its own stack, and returns how many
 * started within a second each.  The BSP must be in x2APIC mode.
 */
bool x2apic_enable(void);
uint32_t x2apic_id(void);
unsigned smp_start(unsigned n, void (*fn)(unsigned index));

/* smp.S: the AP start-up code smp.c copies, and its entry into C */
extern char smp_trampoline[], smp_trampoline_end[], smp_tramp_gdt_desc[];
void smp_ap_main(void);
/* boot.S: the GDT's pseudo-descriptor (limit, 64-bit base) */
extern char gdt_desc[];

/* main.c */
void isr_dispatch(IsrFrame *f);
void __attribute__((noreturn)) guest_main(uint32_t magic, uint32_t mbi);

/* x2APIC (Intel SDM Vol. 3A 11.12; AMD APM vol. 2, 16.3) */
#define MSR_APIC_BASE           0x1b
#define APIC_BASE_EN            (1u << 11)
#define APIC_BASE_EXTD          (1u << 10)
#define MSR_X2APIC_ID           0x802
#define MSR_X2APIC_EOI          0x80b
#define MSR_X2APIC_SVR          0x80f
#define MSR_X2APIC_ICR          0x830   /* one 64-bit register */
#define MSR_X2APIC_LVT_TIMER    0x832
#define MSR_X2APIC_INIT_COUNT   0x838
#define MSR_X2APIC_DIV_CONF     0x83e
#define MSR_X2APIC_SELF_IPI     0x83f
#define APIC_SVR_ENABLE         (1u << 8)
#define APIC_LVT_MASKED         (1u << 16)
#define APIC_LVT_PERIODIC       (1u << 17)
#define APIC_DIV_BY_1           0xb
#define CPUID_1_ECX_X2APIC      (1u << 21)

/* 8259 interrupt mask registers (OCW1) */
#define PIC1_DATA               0x21
#define PIC2_DATA               0xa1

/*
 * The address of a label local to a file's assembly, by a RIP-relative
 * LEA, so that C needs no extern for it.
 */
#define ASM_ADDR(sym) ({                                        \
    uint64_t addr_;                                             \
    asm("lea " #sym "(%%rip), %0" : "=r"(addr_));               \
    addr_;                                                      \
})

#define GUEST_STR_(x)           #x
#define GUEST_STR(x)            GUEST_STR_(x)

/*
 * The x2APIC EOI of an interrupt handler written in assembly (a WRMSR
 * of 0); clobbers RAX, RCX and RDX, which the handler saves.
 */
#define X2APIC_EOI_ASM                                          \
    "   mov $" GUEST_STR(MSR_X2APIC_EOI) ", %ecx\n"            \
    "   xor %eax, %eax\n"                                       \
    "   xor %edx, %edx\n"                                       \
    "   wrmsr\n"

#endif /* __ASSEMBLER__ */

#endif /* NKVM_GUEST_H */
