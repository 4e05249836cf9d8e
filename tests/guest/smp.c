/*
 * nkvm-guest: starting the application processors
 *
 * INIT, then two start-up IPIs naming SMP_TRAMPOLINE's page (Intel SDM
 * vol. 3A, 9.4.4.1 "Typical BSP Initialization Sequence"; AMD APM
 * vol. 2, 16.5), sent through the x2APIC ICR (ICR as one MSR, SDM vol.
 * 3A 11.12.9).  smp.S takes the AP to 64-bit code and smp_ap_main().
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "nkvm-guest.h"

#define ICR_INIT                0x00004500  /* INIT, level assert */
#define ICR_STARTUP             0x00004600  /* start-up, level assert */
#define SPURIOUS_VECTOR         0xff
#define AP_STACK_SIZE           16384
/* TSC ticks: about 10 ms, 200 us and 1 s at 2-3 GHz */
#define INIT_WAIT               30000000ull
#define SIPI_WAIT               600000ull
#define AP_WAIT                 3000000000ull

/* smp.S loads it as the AP's stack pointer */
volatile uint64_t smp_ap_stack;

static uint8_t ap_stacks[SMP_MAX_CPUS][AP_STACK_SIZE]
    __attribute__((aligned(16)));
typedef struct __attribute__((packed)) DescPtr {
    uint16_t limit;
    uint64_t base;
} DescPtr;

static DescPtr bsp_idtr;
static volatile unsigned ap_index;      /* read by the AP */
static volatile bool ap_running;        /* written by the AP */
static void (*ap_fn)(unsigned index);

bool x2apic_enable(void)
{
    uint32_t a, b, c, d;

    cpuid(1, &a, &b, &c, &d);
    if (!(c & CPUID_1_ECX_X2APIC)) {
        return false;
    }
    wrmsr(MSR_APIC_BASE, rdmsr(MSR_APIC_BASE) | APIC_BASE_EN |
          APIC_BASE_EXTD);
    wrmsr(MSR_X2APIC_SVR, APIC_SVR_ENABLE | SPURIOUS_VECTOR);
    return true;
}

uint32_t x2apic_id(void)
{
    return (uint32_t)rdmsr(MSR_X2APIC_ID);
}

static void tsc_wait(uint64_t ticks)
{
    uint64_t start = rdtsc();

    while (rdtsc() - start < ticks) {
        asm volatile("pause");
    }
}

void smp_ap_main(void)
{
    unsigned index = ap_index;

    asm volatile("lidt %0" : : "m"(bsp_idtr));
    x2apic_enable();
    ap_running = true;
    ap_fn(index);
    for (;;) {
        asm volatile("cli; hlt");
    }
}

static bool start_one(unsigned index)
{
    uint64_t start;

    ap_index = index;
    ap_running = false;
    smp_ap_stack = (uint64_t)&ap_stacks[index][AP_STACK_SIZE];
    wrmsr(MSR_X2APIC_ICR, ((uint64_t)index << 32) | ICR_INIT);
    tsc_wait(INIT_WAIT);
    wrmsr(MSR_X2APIC_ICR, ((uint64_t)index << 32) | ICR_STARTUP |
          (SMP_TRAMPOLINE >> 12));
    tsc_wait(SIPI_WAIT);
    if (!ap_running) {
        wrmsr(MSR_X2APIC_ICR, ((uint64_t)index << 32) | ICR_STARTUP |
              (SMP_TRAMPOLINE >> 12));
    }
    for (start = rdtsc(); !ap_running; ) {
        if (rdtsc() - start > AP_WAIT) {
            return false;
        }
        asm volatile("pause");
    }
    return true;
}

unsigned smp_start(unsigned n, void (*fn)(unsigned index))
{
    const DescPtr *g = (const DescPtr *)gdt_desc;
    size_t len = smp_trampoline_end - smp_trampoline;
    uint8_t *tramp = (uint8_t *)SMP_TRAMPOLINE;
    unsigned i;

    if (n > SMP_MAX_CPUS) {
        n = SMP_MAX_CPUS;
    }
    memcpy(tramp, smp_trampoline, len);
    /* real mode reaches only the first 64 KiB: the GDT's pointer too */
    memcpy(tramp + (smp_tramp_gdt_desc - smp_trampoline), &g->limit, 2);
    memcpy(tramp + (smp_tramp_gdt_desc - smp_trampoline) + 2, &g->base, 4);
    asm volatile("sidt %0" : "=m"(bsp_idtr));
    ap_fn = fn;
    for (i = 1; i < n; i++) {
        if (!start_one(i)) {
            break;
        }
    }
    return i;
}
