/*
 * nkvm-guest: "svm-nrip" scenario, the guest as a minimal SVM hypervisor
 *
 * The guest enables EFER.SVME, builds one VMCB and runs an L2 payload
 * (the assembly at the end of this file) that shares its page tables
 * and GDT.  It checks, on an exact label of each instruction:
 *
 *  - NRIP save (AMD APM vol. 2, 15.7.1): on #VMEXIT for an instruction
 *    intercept (15.9), IOIO, MSR, and the #BP/#OF/#BR exception
 *    intercepts of INT3/INTO/BOUND, VMCB offset C8h holds the address of
 *    the next instruction; for other exits (here #UD) it is reset to 0;
 *  - the saved RIP is the intercepted instruction itself (15.9, 15.12);
 *  - INT3 and INTO exit through the #BP/#OF intercepts, INT n (CD ib,
 *    n = 3 included) through the INTn intercept (15.12.4-5, Table 15-7);
 *  - EVENTINJ (15.20): a software interrupt (TYPE 4) and an injected
 *    #BP (TYPE 3, vector 3, "behaves like a trap raised by INT3") push
 *    NextRIP as their return address, both when NextRIP is the end of
 *    the backing instruction and when it is deliberately elsewhere.
 *
 * Without CPUID Fn8000_000A_EDX[NRIPS] the scenario reports that as one
 * "not ok", then checks that the VMCB's NextRIP stays as the guest wrote
 * it (0) and that injection pushes the guest RIP (QEMU's old behaviour).
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "svm-lib.h"
#include "svm-nrip.h"

typedef struct L2Step {
    const char *name;
    uint64_t exit_code;
    const char *insn;           /* label at the intercepted instruction */
    const char *next;           /* label right after it */
} L2Step;

static uint8_t vmcb[PAGE_SIZE] __attribute__((aligned(PAGE_SIZE)));
static uint8_t hsave[PAGE_SIZE] __attribute__((aligned(PAGE_SIZE)));
static uint8_t iopm[3 * PAGE_SIZE] __attribute__((aligned(PAGE_SIZE)));
static uint8_t msrpm[2 * PAGE_SIZE] __attribute__((aligned(PAGE_SIZE)));
static uint8_t l2_stack[2 * PAGE_SIZE] __attribute__((aligned(PAGE_SIZE)));
static IdtGate l2_idt[256] __attribute__((aligned(PAGE_SIZE)));

#define STEP(n, code) { #n, code, svm_l2_##n, svm_l2_##n##_end }

static const L2Step steps[] = {
    STEP(cpuid, EXIT_CPUID),
    STEP(rdmsr, EXIT_MSR),
    STEP(wrmsr, EXIT_MSR),
    STEP(in_imm, EXIT_IOIO),
    STEP(out_imm, EXIT_IOIO),
    STEP(in_dx, EXIT_IOIO),
    STEP(outw_dx, EXIT_IOIO),
    STEP(rep_outsb, EXIT_IOIO),
    STEP(fs_a32_rep_outsb, EXIT_IOIO),
    STEP(rex_in_imm, EXIT_IOIO),
    STEP(rep_insw_a32, EXIT_IOIO),
    STEP(hlt, EXIT_HLT),
    STEP(vmmcall, EXIT_VMMCALL),
    STEP(int3, EXIT_EXCP_BP),
    STEP(int80, EXIT_SWINT),
    STEP(int_3, EXIT_SWINT),
    STEP(rdtsc, EXIT_RDTSC),
    STEP(pause, EXIT_PAUSE),
    STEP(invd, EXIT_INVD),
    STEP(wbinvd, EXIT_WBINVD),
    STEP(mov_cr0, EXIT_READ_CR0),
    STEP(mov_dr7, EXIT_READ_DR7),
    STEP(invlpg, EXIT_INVLPG),
    STEP(stgi, EXIT_STGI),
    STEP(clgi, EXIT_CLGI),
    STEP(vmload, EXIT_VMLOAD),
    STEP(vmsave, EXIT_VMSAVE),
    STEP(vmrun, EXIT_VMRUN),
    STEP(into, EXIT_EXCP_OF),
    STEP(bound, EXIT_EXCP_BR),
    STEP(final, EXIT_VMMCALL),
};

static void (*check)(const char *desc, uint64_t got, uint64_t expected);
static bool nrips;

/* Set up the VMCB for L2 at rip, on a fresh stack, with L1's state. */
static void vmcb_reset_l2(const char *rip)
{
    svm_vmcb_mirror_l1(vmcb);
    vmcb_w32(vmcb, VMCB_IDTR + 4, sizeof(l2_idt) - 1);
    vmcb_w64(vmcb, VMCB_IDTR + 8, (uint64_t)l2_idt);
    vmcb_w64(vmcb, VMCB_RIP, (uint64_t)rip);
    vmcb_w64(vmcb, VMCB_RSP, (uint64_t)(l2_stack + sizeof(l2_stack)));
}

static void vmcb_init(void)
{
    unsigned v;

    memset(vmcb, 0, sizeof(vmcb));
    /* every port and every MSR is intercepted */
    memset(iopm, 0xff, sizeof(iopm));
    memset(msrpm, 0xff, sizeof(msrpm));
    vmcb_w64(vmcb, VMCB_IOPM_BASE, (uint64_t)iopm);
    vmcb_w64(vmcb, VMCB_MSRPM_BASE, (uint64_t)msrpm);
    vmcb_w32(vmcb, VMCB_ASID, 1);
    /*
     * CR0: stock QEMU 10.0.13's MOV from CR3 checks the CR0 read
     * intercept instead of its own (fixed by hook patch 0014 and tested
     * in svm-fidelity.c); CR0 gives the same exit on both.
     */
    vmcb_w16(vmcb, VMCB_CR_READ, 1 << 0);
    vmcb_w16(vmcb, VMCB_DR_READ, 1 << 7);
    vmcb_w32(vmcb, VMCB_EXCEPTIONS, (1 << 3) | (1 << 4) | (1 << 5) | (1 << 6));
    vmcb_w64(vmcb, VMCB_INTERCEPT,
             INTERCEPT(EXIT_RDTSC) | INTERCEPT(EXIT_CPUID) |
             INTERCEPT(EXIT_SWINT) | INTERCEPT(EXIT_INVD) |
             INTERCEPT(EXIT_PAUSE) | INTERCEPT(EXIT_HLT) |
             INTERCEPT(EXIT_INVLPG) | INTERCEPT(EXIT_IOIO) |
             INTERCEPT(EXIT_MSR) | INTERCEPT(EXIT_VMRUN) |
             INTERCEPT(EXIT_VMMCALL) | INTERCEPT(EXIT_VMLOAD) |
             INTERCEPT(EXIT_VMSAVE) | INTERCEPT(EXIT_STGI) |
             INTERCEPT(EXIT_CLGI) | INTERCEPT(EXIT_WBINVD));

    /* L2's IDT: every vector goes to svm_l2_handler (64-bit gate, DPL 0) */
    for (v = 0; v < 256; v++) {
        idt_set_gate(&l2_idt[v], (uint64_t)svm_l2_handler);
    }
}

static void report(const char *what, const char *name, uint64_t got,
                   uint64_t expected)
{
    check_named(check, name, what, got, expected);
}

static void run_intercepts(void)
{
    unsigned i;

    vmcb_reset_l2(svm_l2_start);
    for (i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        const L2Step *st = &steps[i];
        uint64_t next = (uint64_t)st->next;

        vmcb_w64(vmcb, VMCB_NEXT_RIP, 0);
        svm_vmrun(vmcb);
        report("exit code", st->name, vmcb_r64(vmcb, VMCB_EXIT_CODE),
               st->exit_code);
        report("saved RIP is the instruction", st->name,
               vmcb_r64(vmcb, VMCB_RIP), (uint64_t)st->insn);
        report(nrips ? "next_rip is the next instruction"
                     : "next_rip stays 0 without NRIPS",
               st->name, vmcb_r64(vmcb, VMCB_NEXT_RIP), nrips ? next : 0);
        if (st->exit_code == EXIT_IOIO) {
            report("EXITINFO2 is the next instruction", st->name,
                   vmcb_r64(vmcb, VMCB_EXIT_INFO_2), next);
        }
        if (vmcb_r64(vmcb, VMCB_RIP) != (uint64_t)st->insn) {
            kprintf("# L2 went astray; stopping the intercept walk\n");
            return;
        }
        /* resume after the instruction, as a hypervisor that emulated it */
        vmcb_w64(vmcb, VMCB_RIP, next);
    }
}

static void run_ud2(void)
{
    const uint64_t sentinel = 0x5a5a5a5a5a5a5a5aull;

    vmcb_reset_l2(svm_l2_ud2);
    vmcb_w64(vmcb, VMCB_NEXT_RIP, sentinel);
    svm_vmrun(vmcb);
    check("ud2: exit code is the #UD exception intercept",
          vmcb_r64(vmcb, VMCB_EXIT_CODE), EXIT_EXCP_UD);
    check(nrips ? "ud2: next_rip is reset to 0 (not an instruction "
                  "intercept, APM 15.7.1)"
                : "ud2: next_rip left alone without NRIPS",
          vmcb_r64(vmcb, VMCB_NEXT_RIP), nrips ? 0 : sentinel);
}

static void run_inject(const char *name, uint32_t event, const char *rip,
                       const char *next_rip)
{
    uint64_t expected = nrips ? (uint64_t)next_rip : (uint64_t)rip;

    vmcb_reset_l2(rip);
    vmcb_w32(vmcb, VMCB_EVENT_INJ, event | EVTINJ_VALID);
    vmcb_w64(vmcb, VMCB_NEXT_RIP, (uint64_t)next_rip);
    svm_l2_pushed_rip = 0;
    svm_l2_pushed_cs = 0;
    svm_vmrun(vmcb);

    report("exit is the VMMCALL of L2's handler", name,
           vmcb_r64(vmcb, VMCB_EXIT_CODE) == EXIT_VMMCALL &&
           vmcb_r64(vmcb, VMCB_RIP) == (uint64_t)svm_l2_handler_vmmcall, 1);
    report(nrips ? "pushed return RIP is VMCB NextRIP"
                 : "pushed return RIP is the guest RIP without NRIPS",
           name, svm_l2_pushed_rip, expected);
    report("pushed CS is the 64-bit code segment", name, svm_l2_pushed_cs,
           GDT_CODE64);
    report(nrips ? "next_rip of the handler's VMMCALL"
                 : "next_rip stays as written without NRIPS",
           name, vmcb_r64(vmcb, VMCB_NEXT_RIP),
           nrips ? (uint64_t)svm_l2_handler_end : (uint64_t)next_rip);
}

void scenario_svm_nrip(void (*check_fn)(const char *, uint64_t, uint64_t))
{
    uint32_t a, b, c, d;

    check = check_fn;
    cpuid(0x80000000, &a, &b, &c, &d);
    if (a < 0x8000000a) {
        check("CPUID has leaf 0x8000000a", a >= 0x8000000a, 1);
        return;
    }
    cpuid(0x80000001, &a, &b, &c, &d);
    if (!(c & (1 << 2))) {
        check("CPUID Fn8000_0001_ECX[SVM] is set", 0, 1);
        return;
    }
    cpuid(0x8000000a, &a, &b, &c, &d);
    nrips = d & (1 << 3);
    kprintf("# SVM revision %u, %u ASIDs, Fn8000_000A_EDX 0x%x, NRIPS %s\n",
            a & 0xff, b, d, nrips ? "present" : "absent");
    check("CPUID Fn8000_000A_EDX[NRIPS] is set", nrips, 1);

    svm_enable(hsave);
    vmcb_init();

    run_intercepts();
    run_ud2();

    /* INT 0x81 (CD 81) backs the injected software interrupt */
    run_inject("inject soft int 0x81, NextRIP after INT 0x81",
               EVTINJ_SOFT_INT | 0x81, svm_l2_inj_int, svm_l2_inj_int_end);
    run_inject("inject soft int 0x81, NextRIP elsewhere",
               EVTINJ_SOFT_INT | 0x81, svm_l2_inj_int, svm_l2_inj_elsewhere);
    /* INT3 (CC) backs the injected #BP and the type-4 vector 3 */
    run_inject("inject #BP (type 3), NextRIP after INT3",
               EVTINJ_EXCEPTION | 3, svm_l2_inj_int3, svm_l2_inj_int3_end);
    run_inject("inject #BP (type 3), NextRIP elsewhere",
               EVTINJ_EXCEPTION | 3, svm_l2_inj_int3, svm_l2_inj_elsewhere);
    run_inject("inject soft int 3 (type 4), NextRIP after INT3",
               EVTINJ_SOFT_INT | 3, svm_l2_inj_int3, svm_l2_inj_int3_end);
}

/*
 * The L2 payload.  Each intercepted instruction sits between the labels
 * svm_l2_<name> and svm_l2_<name>_end; what comes between two of them
 * only sets up registers.  Every port and MSR is intercepted, so no I/O
 * or MSR access really happens.
 */
asm(
    "   .text\n"
    "   .code64\n"
    "   .balign 4096\n"
    "   .globl svm_l2_page\n"
    "svm_l2_page:\n"
    "   .macro L name\n"
    "   .globl svm_l2_\\name\n"
    "svm_l2_\\name\\():\n"
    "   .endm\n"
    "   .macro E name\n"
    "   .globl svm_l2_\\name\\()_end\n"
    "svm_l2_\\name\\()_end:\n"
    "   .endm\n"
    "   .globl svm_l2_start\n"
    "svm_l2_start:\n"
    "   xor %eax, %eax\n"
    "   xor %ecx, %ecx\n"
    "   L cpuid\n"
    "   cpuid\n"
    "   E cpuid\n"
    "   mov $0xc0000102, %ecx\n"
    "   L rdmsr\n"
    "   rdmsr\n"
    "   E rdmsr\n"
    "   L wrmsr\n"
    "   wrmsr\n"
    "   E wrmsr\n"
    "   L in_imm\n"
    "   in $0x99, %al\n"
    "   E in_imm\n"
    "   L out_imm\n"
    "   out %al, $0x99\n"
    "   E out_imm\n"
    "   mov $0x9a, %edx\n"
    "   L in_dx\n"
    "   in (%dx), %eax\n"
    "   E in_dx\n"
    "   L outw_dx\n"
    "   out %ax, (%dx)\n"           /* 66 ef */
    "   E outw_dx\n"
    "   lea svm_l2_page(%rip), %rsi\n"
    "   mov %rsi, %rdi\n"
    "   mov $1, %ecx\n"
    "   L rep_outsb\n"
    "   rep outsb\n"              /* f3 6e */
    "   E rep_outsb\n"
    "   L fs_a32_rep_outsb\n"
    "   .byte 0x64, 0x67, 0xf3, 0x6e\n"
    "   E fs_a32_rep_outsb\n"
    "   L rex_in_imm\n"
    "   .byte 0x48, 0xe5, 0x99\n" /* rex.W in $0x99, %eax */
    "   E rex_in_imm\n"
    "   L rep_insw_a32\n"
    "   .byte 0x66, 0x67, 0xf3, 0x6d\n"
    "   E rep_insw_a32\n"
    "   L hlt\n"
    "   hlt\n"
    "   E hlt\n"
    "   L vmmcall\n"
    "   vmmcall\n"
    "   E vmmcall\n"
    "   L int3\n"
    "   int3\n"
    "   E int3\n"
    "   L int80\n"
    "   int $0x80\n"
    "   E int80\n"
    "   L int_3\n"
    "   .byte 0xcd, 0x03\n"           /* INT n with n = 3 */
    "   E int_3\n"
    "   L rdtsc\n"
    "   rdtsc\n"
    "   E rdtsc\n"
    "   L pause\n"
    "   pause\n"
    "   E pause\n"
    "   L invd\n"
    "   invd\n"
    "   E invd\n"
    "   L wbinvd\n"
    "   wbinvd\n"
    "   E wbinvd\n"
    "   L mov_cr0\n"
    "   mov %cr0, %rax\n"
    "   E mov_cr0\n"
    "   L mov_dr7\n"
    "   mov %dr7, %rax\n"
    "   E mov_dr7\n"
    "   lea svm_l2_page(%rip), %rax\n"
    "   L invlpg\n"
    "   invlpg 0x12345(%rax,%rcx,8)\n"
    "   E invlpg\n"
    "   L stgi\n"
    "   stgi\n"
    "   E stgi\n"
    "   L clgi\n"
    "   clgi\n"
    "   E clgi\n"
    "   L vmload\n"
    "   vmload\n"               /* RAX: a 4 KiB aligned page */
    "   E vmload\n"
    "   L vmsave\n"
    "   vmsave\n"
    "   E vmsave\n"
    "   L vmrun\n"
    "   vmrun\n"
    "   E vmrun\n"
    /* INTO and BOUND are invalid in 64-bit mode: compatibility mode */
    "   pushq $0x18\n"
    "   lea svm_l2_compat(%rip), %rax\n"
    "   push %rax\n"
    "   lretq\n"
    "   .code32\n"
    "svm_l2_compat:\n"
    "   mov $0x7f, %al\n"
    "   add $1, %al\n"                      /* OF=1 */
    "   L into\n"
    "   into\n"
    "   E into\n"
    "   mov $100, %eax\n"
    "   L bound\n"
    "   bound %eax, svm_l2_bounds\n"  /* 100 is not in [0, 10] */
    "   E bound\n"
    "   ljmp $0x08, $svm_l2_back64\n"
    "   .code64\n"
    "svm_l2_back64:\n"
    "   L final\n"
    "   vmmcall\n"
    "   E final\n"
    "   ud2\n"
    /* #UD: an exception intercept that does not save nRIP */
    "   L ud2\n"
    "   ud2\n"
    "   E ud2\n"
    /* backing instructions for event injection; never executed */
    "   L inj_int\n"
    "   int $0x81\n"
    "   E inj_int\n"
    "   ud2\n"
    "   L inj_int3\n"
    "   int3\n"
    "   E inj_int3\n"
    "   ud2\n"
    "   .balign 64\n"
    "   L inj_elsewhere\n"
    "   ud2\n"
    /* L2's handler for every vector: record the frame, exit to L1 */
    "   .balign 16\n"
    "   L handler\n"
    "   mov (%rsp), %rax\n"
    "   mov %rax, svm_l2_pushed_rip(%rip)\n"
    "   mov 8(%rsp), %rax\n"
    "   mov %rax, svm_l2_pushed_cs(%rip)\n"
    "   L handler_vmmcall\n"
    "   vmmcall\n"
    "   E handler\n"
    "   ud2\n"
    "   .data\n"
    "   .balign 8\n"
    "svm_l2_bounds: .long 0, 10\n"
    "   .globl svm_l2_pushed_rip\n"
    "svm_l2_pushed_rip: .quad 0\n"
    "   .globl svm_l2_pushed_cs\n"
    "svm_l2_pushed_cs: .quad 0\n"
    "   .text\n"
    "   .purgem L\n"
    "   .purgem E\n"
);
