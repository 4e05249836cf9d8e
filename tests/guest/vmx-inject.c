/*
 * nkvm-guest: "vmx-inject" scenario, the guest as a minimal VMX
 * hypervisor that injects one event of each kind into its L2
 *
 * The first step of the VMX torture (docs/vmx-torture.rst, "Order of
 * work"): the guest enters VMX operation, builds one VMCS with EPT
 * (identity, 2 MiB pages) and runs an L2 payload (the assembly at the
 * end of this file) that shares its page tables and GDT but has its own
 * IDT and stack.  It checks:
 *
 *  - VMLAUNCH and VMRESUME: L2's VMCALL exits with reason 18, the
 *    guest RIP at the VMCALL and an exit instruction length of 3; HLT
 *    exits with reason 12;
 *  - event injection through the VM-entry interruption-information
 *    field (SDM Vol. 3C, 27.6.1): an external interrupt, an NMI, #GP
 *    and #PF with error codes (hardware exceptions, type 3), INT n
 *    (type 4), ICEBP (type 5), INT3 and INTO (type 6).  L2's handler
 *    for each vector records nothing itself: L1 reads the vector its
 *    stub pushed, the frame the delivery pushed (with an error code
 *    exactly where one was asked for), and CR2;
 *  - the return address of a software interrupt or exception is the
 *    guest RIP plus the VM-entry instruction length (27.6.1.1), with
 *    lengths unlike the real instruction's, which is how a length lost
 *    by a hypervisor below shows;
 *  - with virtual NMIs, L2 is blocked for NMIs after one was delivered
 *    and before its IRET (interruptibility state bit 3, 26.7.1.2);
 *  - no exit reports a delivery that was cut short (IDT-vectoring
 *    information not valid).
 *
 * TCG has no VMX: this runs only where L1 has a VMX (the VMX lab on
 * Bochs, docs/lab.rst).  Without one, it reports that as one "not ok".
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "vmx-lib.h"
#include "vmx-inject.h"

/* The guest RAM the EPT maps, identity: far more than the VM has */
#define EPT_MAPPED              (1ull << 30)
#define L2_CS_FRAME_WORDS       5       /* RIP, CS, RFLAGS, RSP, SS */
#define PF_CR2                  0x00dead00ull

typedef struct InjectCase {
    const char *name;
    uint32_t info;              /* VM-entry interruption information */
    uint32_t error_code;        /* with INTR_INFO_DELIVER_CODE */
    uint32_t insn_len;          /* types 4 to 6 */
    const char *rip;            /* where L2 is when the event comes */
} InjectCase;

static uint8_t vmxon_region[PAGE_SIZE] __attribute__((aligned(PAGE_SIZE)));
static uint8_t vmcs[PAGE_SIZE] __attribute__((aligned(PAGE_SIZE)));
static uint64_t ept_pml4[512] __attribute__((aligned(PAGE_SIZE)));
static uint64_t ept_pdpt[512] __attribute__((aligned(PAGE_SIZE)));
static uint64_t ept_pd[512] __attribute__((aligned(PAGE_SIZE)));
static uint8_t l2_stack[2 * PAGE_SIZE] __attribute__((aligned(PAGE_SIZE)));
static IdtGate l2_idt[256] __attribute__((aligned(PAGE_SIZE)));
static VmxGuestRegs l2_regs;
static VmxCaps caps;
static bool launched;
static void (*check)(const char *desc, uint64_t got, uint64_t expected);

static void report(const char *name, const char *what, uint64_t got,
                   uint64_t expected)
{
    check_named(check, name, what, got, expected);
}

static uint64_t ept_init(void)
{
    unsigned i;

    ept_pml4[0] = (uint64_t)ept_pdpt | EPT_RWX;
    ept_pdpt[0] = (uint64_t)ept_pd | EPT_RWX;
    for (i = 0; i < EPT_MAPPED >> 21; i++) {
        ept_pd[i] = ((uint64_t)i << 21) | EPT_RWX | EPT_MT_WB | EPT_LARGE;
    }
    return (uint64_t)ept_pml4 | EPTP_WB_4LEVEL;
}

/* The controls this scenario needs; false (reported) if one is missing */
static bool vmcs_controls(void)
{
    uint32_t missing = vmx_vmcs_setup(&caps, 0, PIN_NMI_EXITING |
                                      PIN_VIRTUAL_NMIS, ept_init());

    report("controls", "every control the scenario needs is allowed",
           missing, 0);
    return !missing;
}

/* L2 at rip on an empty stack, nothing to inject */
static void l2_reset(const char *rip)
{
    vmx_vmcs_guest_mirror_l1(0);
    vmwrite(VMCS_GUEST_IDTR_BASE, (uint64_t)l2_idt);
    vmwrite(VMCS_GUEST_IDTR_LIMIT, sizeof(l2_idt) - 1);
    vmwrite(VMCS_GUEST_RIP, (uint64_t)rip);
    vmwrite(VMCS_GUEST_RSP, (uint64_t)(l2_stack + sizeof(l2_stack)));
}

/* Run L2 to its next exit; false (reported) if it did not get there */
static bool l2_run(const char *name)
{
    int r = vmx_run(&l2_regs, launched);
    uint32_t reason;

    if (r != VMX_RUN_EXIT) {
        report(name, r == VMX_RUN_FAIL_VALID ?
               "VM entry succeeds (VM-instruction error as got)" :
               "VM entry succeeds (VMfailInvalid)",
               r == VMX_RUN_FAIL_VALID ? vmread(VMCS_INSN_ERROR) : ~0ull, 0);
        return false;
    }
    launched = true;
    reason = vmread(VMCS_EXIT_REASON);
    if (reason & EXIT_REASON_ENTRY_FAILED) {
        report(name, "VM entry succeeds (exit reason as got)", reason, 0);
        return false;
    }
    return true;
}

static void run_round_trip(void)
{
    l2_reset(vmx_l2_vmcall);
    if (!l2_run("VMLAUNCH")) {
        return;
    }
    report("VMLAUNCH", "L2's VMCALL exits", vmread(VMCS_EXIT_REASON),
           EXIT_REASON_VMCALL);
    report("VMLAUNCH", "guest RIP is the VMCALL", vmread(VMCS_GUEST_RIP),
           (uint64_t)vmx_l2_vmcall);
    report("VMLAUNCH", "exit instruction length is VMCALL's",
           vmread(VMCS_EXIT_INSN_LEN),
           (uint64_t)(vmx_l2_vmcall_end - vmx_l2_vmcall));

    /* resume after it, as a hypervisor that handled the call */
    vmwrite(VMCS_GUEST_RIP, vmread(VMCS_GUEST_RIP) +
            vmread(VMCS_EXIT_INSN_LEN));
    if (!l2_run("VMRESUME")) {
        return;
    }
    report("VMRESUME", "L2's HLT exits", vmread(VMCS_EXIT_REASON),
           EXIT_REASON_HLT);
    report("VMRESUME", "guest RIP is the HLT", vmread(VMCS_GUEST_RIP),
           (uint64_t)vmx_l2_hlt);
}

static bool has_error_code(uint32_t info)
{
    return info & INTR_INFO_DELIVER_CODE;
}

static bool is_soft(uint32_t info)
{
    uint32_t type = info & INTR_TYPE_MASK;

    return type == INTR_TYPE_SOFT_INTR || type == INTR_TYPE_PRIV_SOFT_EXC ||
           type == INTR_TYPE_SOFT_EXCEPTION;
}

static void run_inject(const InjectCase *c)
{
    const uint64_t *sp;
    uint64_t top = (uint64_t)(l2_stack + sizeof(l2_stack));
    uint64_t depth, frame, rip = (uint64_t)c->rip;
    uint32_t type = c->info & INTR_TYPE_MASK;

    l2_reset(c->rip);
    if (type == INTR_TYPE_EXT_INTR) {
        /* an external interrupt is injected only with IF set (27.3.1.5) */
        vmwrite(VMCS_GUEST_RFLAGS, 0x202);
    }
    vmwrite(VMCS_ENTRY_INTR_INFO, c->info | INTR_INFO_VALID);
    vmwrite(VMCS_ENTRY_EXCEPTION_ERR, c->error_code);
    vmwrite(VMCS_ENTRY_INSN_LEN, c->insn_len);
    /* VM entry leaves CR2 alone: a hypervisor injecting #PF sets it */
    asm volatile("mov %0, %%cr2" : : "r"(PF_CR2 ^ c->info) : "memory");
    vmx_l2_cr2 = 0;
    if (!l2_run(c->name)) {
        return;
    }
    report(c->name, "exit is the VMCALL of L2's handler",
           vmread(VMCS_EXIT_REASON) == EXIT_REASON_VMCALL &&
           vmread(VMCS_GUEST_RIP) == (uint64_t)vmx_l2_handler_vmcall, 1);
    report(c->name, "no delivery was cut short (IDT-vectoring info)",
           vmread(VMCS_IDT_VECTORING_INFO) & INTR_INFO_VALID, 0);
    report(c->name, "VM entry consumed the injection (valid bit clear)",
           vmread(VMCS_ENTRY_INTR_INFO) & INTR_INFO_VALID, 0);

    /* the stub's vector, then the IA-32e frame from a 16-aligned top */
    sp = (const uint64_t *)vmread(VMCS_GUEST_RSP);
    depth = top - (uint64_t)sp;
    frame = 8 * (1 + L2_CS_FRAME_WORDS + has_error_code(c->info));
    report(c->name, "stack depth: vector, frame, error code if asked",
           depth, frame);
    if (depth != frame) {
        return;
    }
    report(c->name, "vector", sp[0], c->info & INTR_INFO_VECTOR_MASK);
    sp++;
    if (has_error_code(c->info)) {
        report(c->name, "error code", *sp++, c->error_code);
    }
    report(c->name, is_soft(c->info) ?
           "pushed RIP is guest RIP + VM-entry instruction length" :
           "pushed RIP is the guest RIP",
           sp[0], rip + (is_soft(c->info) ? c->insn_len : 0));
    report(c->name, "pushed CS is the 64-bit code segment", sp[1],
           GDT_CODE64);
    report(c->name, "CR2 is what L1 left in it", vmx_l2_cr2,
           PF_CR2 ^ c->info);
    if (type == INTR_TYPE_NMI) {
        report(c->name, "virtual NMIs blocked until L2's IRET",
               vmread(VMCS_GUEST_INTERRUPTIBILITY) & INTERRUPTIBILITY_NMI,
               INTERRUPTIBILITY_NMI);
    }
}

void scenario_vmx_inject(void (*check_fn)(const char *, uint64_t, uint64_t))
{
    /*
     * Soft events sit on a backing instruction of another length, so
     * that a return RIP computed from the instruction rather than from
     * the VM-entry instruction length shows.
     */
    const InjectCase cases[] = {
        { "external interrupt 0x20", INTR_TYPE_EXT_INTR | 0x20, 0, 0,
          vmx_l2_nop },
        { "NMI", INTR_TYPE_NMI | 2, 0, 0, vmx_l2_nop },
        { "#GP(0x1234)", INTR_TYPE_HARD_EXCEPTION | INTR_INFO_DELIVER_CODE |
          13, 0x1234, 0, vmx_l2_nop },
        { "#PF(W)", INTR_TYPE_HARD_EXCEPTION | INTR_INFO_DELIVER_CODE | 14,
          0x2, 0, vmx_l2_nop },
        { "INT 0x81, length 2 (its own)", INTR_TYPE_SOFT_INTR | 0x81, 0, 2,
          vmx_l2_int81 },
        { "INT 0x81, length 7", INTR_TYPE_SOFT_INTR | 0x81, 0, 7,
          vmx_l2_int81 },
        { "ICEBP (type 5), length 3", INTR_TYPE_PRIV_SOFT_EXC | 1, 0, 3,
          vmx_l2_int81 },
        { "INT3 (type 6), length 5", INTR_TYPE_SOFT_EXCEPTION | 3, 0, 5,
          vmx_l2_int81 },
        { "INTO (type 6), length 11", INTR_TYPE_SOFT_EXCEPTION | 4, 0, 11,
          vmx_l2_int81 },
        { "INT 0x81, length 15", INTR_TYPE_SOFT_INTR | 0x81, 0, 15,
          vmx_l2_int81 },
    };
    const char *err;
    unsigned v;

    check = check_fn;
    if (!vmx_probe(&caps)) {
        check("CPUID.1:ECX[VMX] is set", 0, 1);
        return;
    }
    kprintf("# VMX basic 0x%lx, misc 0x%lx, EPT/VPID 0x%lx, "
            "proc2 0x%lx\n", caps.basic, caps.misc, caps.ept_vpid,
            caps.proc2);
    report("EPT", "4-level, write-back, 2 MiB pages",
           (caps.ept_vpid & (EPT_CAP_WALK_4 | EPT_CAP_WB | EPT_CAP_2M)) ==
           (EPT_CAP_WALK_4 | EPT_CAP_WB | EPT_CAP_2M), 1);

    /* no interrupt of L1's may reach L2: nothing intercepts them */
    outb(PIC1_DATA, 0xff);
    outb(PIC2_DATA, 0xff);
    err = vmx_enable(&caps, 0, vmxon_region);
    report("VMXON", err ? err : "enters VMX operation", !err, 1);
    if (err) {
        return;
    }
    err = vmx_vmcs_load(&caps, vmcs);
    report("VMCS", err ? err : "VMCLEAR and VMPTRLD", !err, 1);
    if (err || !vmcs_controls()) {
        return;
    }
    for (v = 0; v < 256; v++) {
        idt_set_gate(&l2_idt[v], (uint64_t)(vmx_l2_stubs + 16 * v));
    }

    run_round_trip();
    for (v = 0; v < sizeof(cases) / sizeof(cases[0]); v++) {
        run_inject(&cases[v]);
    }
}

/*
 * The L2 payload.  vmx_l2_stubs: one 16-byte stub per vector that
 * pushes the vector and goes to the common handler, which saves CR2 and
 * exits with VMCALL, leaving the frame on L2's stack for L1 to read.
 */
asm(
    "   .text\n"
    "   .code64\n"
    "   .globl vmx_l2_vmcall, vmx_l2_vmcall_end, vmx_l2_hlt\n"
    "vmx_l2_vmcall:\n"
    "   vmcall\n"
    "vmx_l2_vmcall_end:\n"
    "vmx_l2_hlt:\n"
    "   hlt\n"
    "   ud2\n"
    /* where events arrive; never executed */
    "   .globl vmx_l2_nop, vmx_l2_int81\n"
    "vmx_l2_nop:\n"
    "   nop\n"
    "   ud2\n"
    "vmx_l2_int81:\n"
    "   int $0x81\n"
    "   ud2\n"
    "   .balign 16\n"
    "   .globl vmx_l2_stubs\n"
    "vmx_l2_stubs:\n"
    "   .set vmx_vec, 0\n"
    "   .rept 256\n"
    "   .balign 16\n"
    "   pushq $vmx_vec\n"
    "   jmp vmx_l2_common\n"
    "   .set vmx_vec, vmx_vec + 1\n"
    "   .endr\n"
    "vmx_l2_common:\n"
    "   push %rax\n"
    "   mov %cr2, %rax\n"
    "   mov %rax, vmx_l2_cr2(%rip)\n"
    "   pop %rax\n"
    "   .globl vmx_l2_handler_vmcall\n"
    "vmx_l2_handler_vmcall:\n"
    "   vmcall\n"
    "   ud2\n"
    "   .data\n"
    "   .balign 8\n"
    "   .globl vmx_l2_cr2\n"
    "vmx_l2_cr2: .quad 0\n"
    "   .text\n"
);
