/*
 * nkvm-guest: helpers shared by the VMX hypervisor scenarios
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "vmx-lib.h"

/* A 64-bit TSS (SDM Vol. 3A, 8.7, Figure 8-11): only its size matters */
typedef struct Tss64 {
    uint8_t bytes[104];
} __attribute__((aligned(16))) Tss64;

/*
 * boot.S's three descriptors, then a 16-byte TSS descriptor per vCPU
 * (VMX_TSS_SEL).  VM exits load TR from the host-state area and the
 * host TR selector must not be 0 (SDM Vol. 3C, 27.2.3), so L1 gets a
 * real TSS that its TR names, rather than a selector that points
 * nowhere.
 */
static uint64_t vmx_gdt[4 + 2 * SMP_MAX_CPUS] __attribute__((aligned(16))) = {
    0,
    0x00af9a000000ffffull,      /* 0x08: 64-bit code, as boot.S */
    0x00cf92000000ffffull,      /* 0x10: flat data */
    0x00cf9a000000ffffull,      /* 0x18: 32-bit code */
};
static Tss64 vmx_tss[SMP_MAX_CPUS];

bool vmx_probe(VmxCaps *caps)
{
    uint32_t a, b, c, d;
    bool true_ctls;

    cpuid(1, &a, &b, &c, &d);
    if (!(c & CPUID_1_ECX_VMX)) {
        return false;
    }
    caps->basic = rdmsr(MSR_VMX_BASIC);
    caps->misc = rdmsr(MSR_VMX_MISC);
    true_ctls = caps->basic & VMX_BASIC_TRUE_CTLS;
    caps->pin = rdmsr(true_ctls ? MSR_VMX_TRUE_PINBASED_CTLS
                                : MSR_VMX_PINBASED_CTLS);
    caps->proc = rdmsr(true_ctls ? MSR_VMX_TRUE_PROCBASED_CTLS
                                 : MSR_VMX_PROCBASED_CTLS);
    caps->exit = rdmsr(true_ctls ? MSR_VMX_TRUE_EXIT_CTLS
                                 : MSR_VMX_EXIT_CTLS);
    caps->entry = rdmsr(true_ctls ? MSR_VMX_TRUE_ENTRY_CTLS
                                  : MSR_VMX_ENTRY_CTLS);
    /* both exist only if the primary controls can activate them */
    caps->proc2 = (caps->proc >> 32) & PROC_SECONDARY ?
                  rdmsr(MSR_VMX_PROCBASED_CTLS2) : 0;
    caps->ept_vpid = (caps->proc2 >> 32) & PROC2_EPT ?
                     rdmsr(MSR_VMX_EPT_VPID_CAP) : 0;
    return true;
}

uint32_t vmx_control(uint64_t cap, uint32_t want, uint32_t *missing)
{
    uint32_t must = cap, may = cap >> 32;

    *missing |= want & ~may;
    return (want | must) & may;
}

static void tss_descriptor(unsigned cpu)
{
    uint64_t base = (uint64_t)&vmx_tss[cpu];
    uint64_t limit = sizeof(vmx_tss[cpu]) - 1;
    unsigned slot = VMX_TSS_SEL(cpu) / 8;

    /* SDM Vol. 3A, 8.2.3, Figure 8-4: available 64-bit TSS, present */
    vmx_gdt[slot] = (limit & 0xffff) | (base & 0xffffff) << 16 |
                    0x89ull << 40 | ((limit >> 16) & 0xf) << 48 |
                    ((base >> 24) & 0xff) << 56;
    vmx_gdt[slot + 1] = base >> 32;
}

static void load_gdt_and_tr(unsigned cpu)
{
    struct __attribute__((packed)) {
        uint16_t limit;
        uint64_t base;
    } gdtr = { sizeof(vmx_gdt) - 1, (uint64_t)vmx_gdt };
    uint16_t sel = VMX_TSS_SEL(cpu);

    tss_descriptor(cpu);
    /* the same selectors as boot.S's table, so CS and SS stay valid */
    asm volatile("lgdt %0\n\t"
                 "ltr %1" : : "m"(gdtr), "r"(sel) : "memory");
}

const char *vmx_enable(const VmxCaps *caps, unsigned cpu, void *region)
{
    uint64_t fc = rdmsr(MSR_IA32_FEATURE_CONTROL);
    uint64_t cr0, cr4, pa = (uint64_t)region;
    bool fail;

    if (!(fc & FEATURE_CONTROL_LOCKED)) {
        wrmsr(MSR_IA32_FEATURE_CONTROL,
              fc | FEATURE_CONTROL_LOCKED | FEATURE_CONTROL_VMXON);
    } else if (!(fc & FEATURE_CONTROL_VMXON)) {
        return "IA32_FEATURE_CONTROL is locked with VMXON disabled";
    }
    asm volatile("mov %%cr0, %0" : "=r"(cr0));
    asm volatile("mov %%cr4, %0" : "=r"(cr4));
    /* SDM Vol. 3C, 24.8: bits fixed to 1 are set, bits fixed to 0 clear */
    cr0 = (cr0 | rdmsr(MSR_VMX_CR0_FIXED0)) &
          rdmsr(MSR_VMX_CR0_FIXED1);
    cr4 = (cr4 | rdmsr(MSR_VMX_CR4_FIXED0) | CR4_VMXE) &
          rdmsr(MSR_VMX_CR4_FIXED1);
    asm volatile("mov %0, %%cr0" : : "r"(cr0) : "memory");
    asm volatile("mov %0, %%cr4" : : "r"(cr4) : "memory");
    if (!(cr4 & CR4_VMXE)) {
        return "IA32_VMX_CR4_FIXED1 does not allow CR4.VMXE";
    }
    load_gdt_and_tr(cpu);

    *(volatile uint32_t *)region = caps->basic & 0x7fffffff; /* VMXON reads */
    asm volatile("vmxon %1\n\tsetna %0"
                 : "=q"(fail) : "m"(pa) : "cc", "memory");
    return fail ? "VMXON failed" : NULL;
}

const char *vmx_vmcs_load(const VmxCaps *caps, void *vmcs)
{
    uint64_t pa = (uint64_t)vmcs;
    bool fail;

    *(volatile uint32_t *)vmcs = caps->basic & 0x7fffffff; /* VMPTRLD reads */
    asm volatile("vmclear %1\n\tsetna %0"
                 : "=q"(fail) : "m"(pa) : "cc", "memory");
    if (fail) {
        return "VMCLEAR failed";
    }
    asm volatile("vmptrld %1\n\tsetna %0"
                 : "=q"(fail) : "m"(pa) : "cc", "memory");
    return fail ? "VMPTRLD failed" : NULL;
}

/*
 * Host state of the current VMCS: this vCPU's control registers, GDT,
 * IDT, TSS and EFER, with vmx_run()'s exit point as RIP.  exit_ctls
 * tells whether the host EFER is loaded.
 */
static void vmx_vmcs_host_l1(unsigned cpu, uint32_t exit_ctls)
{
    struct __attribute__((packed)) { uint16_t limit; uint64_t base; } idtr;
    uint64_t cr;

    asm volatile("sidt %0" : "=m"(idtr));
    asm volatile("mov %%cr0, %0" : "=r"(cr));
    vmwrite(VMCS_HOST_CR0, cr);
    asm volatile("mov %%cr3, %0" : "=r"(cr));
    vmwrite(VMCS_HOST_CR3, cr);
    asm volatile("mov %%cr4, %0" : "=r"(cr));
    vmwrite(VMCS_HOST_CR4, cr);
    vmwrite(VMCS_HOST_CS_SEL, GDT_CODE64);
    vmwrite(VMCS_HOST_SS_SEL, GDT_DATA);
    vmwrite(VMCS_HOST_DS_SEL, GDT_DATA);
    vmwrite(VMCS_HOST_ES_SEL, GDT_DATA);
    vmwrite(VMCS_HOST_FS_SEL, GDT_DATA);
    vmwrite(VMCS_HOST_GS_SEL, GDT_DATA);
    vmwrite(VMCS_HOST_TR_SEL, VMX_TSS_SEL(cpu));
    vmwrite(VMCS_HOST_FS_BASE, 0);
    vmwrite(VMCS_HOST_GS_BASE, 0);
    vmwrite(VMCS_HOST_TR_BASE, (uint64_t)&vmx_tss[cpu]);
    vmwrite(VMCS_HOST_GDTR_BASE, (uint64_t)vmx_gdt);
    vmwrite(VMCS_HOST_IDTR_BASE, idtr.base);
    vmwrite(VMCS_HOST_SYSENTER_CS, 0);
    vmwrite(VMCS_HOST_SYSENTER_ESP, 0);
    vmwrite(VMCS_HOST_SYSENTER_EIP, 0);
    if (exit_ctls & EXIT_LOAD_EFER) {
        vmwrite(VMCS_HOST_EFER, rdmsr(MSR_EFER));
    }
    vmwrite(VMCS_HOST_RIP, (uint64_t)vmx_exit_point);
    /* HOST_RSP is written by vmx_run(), which knows its stack */
}

uint32_t vmx_vmcs_setup(const VmxCaps *caps, unsigned cpu, uint32_t pin_want,
                        uint64_t eptp)
{
    uint32_t missing = 0, spare = 0, pin, proc, proc2, exit, entry;

    pin = vmx_control(caps->pin, pin_want, &missing);
    proc = vmx_control(caps->proc, PROC_HLT_EXITING | PROC_UNCOND_IO_EXITING |
                       PROC_SECONDARY, &missing);
    proc2 = vmx_control(caps->proc2, PROC2_EPT, &missing);
    /* EFER is the same on both sides: loading it is tidy, not needed */
    exit = vmx_control(caps->exit, EXIT_HOST_64, &missing) |
           vmx_control(caps->exit, EXIT_SAVE_EFER | EXIT_LOAD_EFER, &spare);
    entry = vmx_control(caps->entry, ENTRY_IA32E_GUEST, &missing) |
            vmx_control(caps->entry, ENTRY_LOAD_EFER, &spare);
    if (missing) {
        return missing;
    }
    vmwrite(VMCS_PIN_CONTROLS, pin);
    vmwrite(VMCS_PROC_CONTROLS, proc);
    vmwrite(VMCS_PROC_CONTROLS2, proc2);
    vmwrite(VMCS_EXIT_CONTROLS, exit);
    vmwrite(VMCS_ENTRY_CONTROLS, entry);
    vmwrite(VMCS_EXCEPTION_BITMAP, 0);
    vmwrite(VMCS_EPT_POINTER, eptp);
    vmx_vmcs_host_l1(cpu, exit);
    return 0;
}

static void guest_segment(unsigned seg, uint16_t sel, uint32_t limit,
                          uint64_t base, uint32_t ar)
{
    vmwrite(VMCS_GUEST_ES_SEL + 2 * seg, sel);
    vmwrite(VMCS_GUEST_ES_LIMIT + 2 * seg, limit);
    vmwrite(VMCS_GUEST_ES_BASE + 2 * seg, base);
    vmwrite(VMCS_GUEST_ES_AR + 2 * seg, ar);
}

void vmx_vmcs_guest_mirror_l1(unsigned cpu)
{
    uint64_t cr;

    guest_segment(VMX_ES, GDT_DATA, 0xffffffff, 0, VMX_AR_DATA);
    guest_segment(VMX_CS, GDT_CODE64, 0xffffffff, 0, VMX_AR_CODE64);
    guest_segment(VMX_SS, GDT_DATA, 0xffffffff, 0, VMX_AR_DATA);
    guest_segment(VMX_DS, GDT_DATA, 0xffffffff, 0, VMX_AR_DATA);
    guest_segment(VMX_FS, GDT_DATA, 0xffffffff, 0, VMX_AR_DATA);
    guest_segment(VMX_GS, GDT_DATA, 0xffffffff, 0, VMX_AR_DATA);
    guest_segment(VMX_LDTR, 0, 0, 0, VMX_AR_UNUSABLE);
    /* VM entry checks TR even though L2 never uses it (27.3.1.2) */
    guest_segment(VMX_TR, VMX_TSS_SEL(cpu), sizeof(vmx_tss[cpu]) - 1,
                  (uint64_t)&vmx_tss[cpu], VMX_AR_TSS64_BUSY);
    vmwrite(VMCS_GUEST_GDTR_BASE, (uint64_t)vmx_gdt);
    vmwrite(VMCS_GUEST_GDTR_LIMIT, sizeof(vmx_gdt) - 1);

    asm volatile("mov %%cr0, %0" : "=r"(cr));
    vmwrite(VMCS_GUEST_CR0, cr);
    asm volatile("mov %%cr3, %0" : "=r"(cr));
    vmwrite(VMCS_GUEST_CR3, cr);
    asm volatile("mov %%cr4, %0" : "=r"(cr));
    vmwrite(VMCS_GUEST_CR4, cr);
    /* L2 owns every bit it can: no CR exits */
    vmwrite(VMCS_CR0_MASK, 0);
    vmwrite(VMCS_CR4_MASK, 0);
    vmwrite(VMCS_CR0_SHADOW, 0);
    vmwrite(VMCS_CR4_SHADOW, 0);
    vmwrite(VMCS_GUEST_EFER, rdmsr(MSR_EFER));
    vmwrite(VMCS_GUEST_DR7, 0x400);
    vmwrite(VMCS_GUEST_DEBUGCTL, 0);
    vmwrite(VMCS_GUEST_RFLAGS, 0x2);
    vmwrite(VMCS_GUEST_SYSENTER_CS, 0);
    vmwrite(VMCS_GUEST_SYSENTER_ESP, 0);
    vmwrite(VMCS_GUEST_SYSENTER_EIP, 0);
    vmwrite(VMCS_GUEST_INTERRUPTIBILITY, 0);
    vmwrite(VMCS_GUEST_ACTIVITY, 0);
    vmwrite(VMCS_GUEST_PENDING_DBG, 0);
    vmwrite(VMCS_LINK_POINTER, ~0ull);
    vmwrite(VMCS_ENTRY_INTR_INFO, 0);
}

void vmx_invept(uint64_t eptp)
{
    struct { uint64_t eptp, zero; } desc = { eptp, 0 };
    uint64_t type = 1;          /* single-context */

    asm volatile("invept %0, %1" : : "m"(desc), "r"(type) : "cc", "memory");
}

_Static_assert(__builtin_offsetof(VmxGuestRegs, rdi) == 0x28 &&
               __builtin_offsetof(VmxGuestRegs, r15) == 0x70,
               "vmx_run's offsets");

/*
 * int vmx_run(VmxGuestRegs *regs, bool launched)
 *
 * A VM exit lands at vmx_exit_point with RSP as HOST_RSP, which is
 * written here, after regs is pushed: so regs is the first thing on
 * the stack there.  A VMLAUNCH or VMRESUME that fails falls through
 * with CF (VMfailInvalid) or ZF (VMfailValid) set.  MOV does not touch
 * the flags, so the choice between VMLAUNCH and VMRESUME is made before
 * L2's registers are loaded.
 */
asm(
    "   .text\n"
    "   .globl vmx_run\n"
    "vmx_run:\n"
    "   push %rbp\n"
    "   push %rbx\n"
    "   push %r12\n"
    "   push %r13\n"
    "   push %r14\n"
    "   push %r15\n"
    "   push %rdi\n"
    "   mov $0x6c14, %eax\n"            /* VMCS_HOST_RSP */
    "   vmwrite %rsp, %rax\n"
    "   test %esi, %esi\n"
    "   mov 0x00(%rdi), %rax\n"
    "   mov 0x08(%rdi), %rbx\n"
    "   mov 0x10(%rdi), %rcx\n"
    "   mov 0x18(%rdi), %rdx\n"
    "   mov 0x20(%rdi), %rsi\n"
    "   mov 0x30(%rdi), %rbp\n"
    "   mov 0x38(%rdi), %r8\n"
    "   mov 0x40(%rdi), %r9\n"
    "   mov 0x48(%rdi), %r10\n"
    "   mov 0x50(%rdi), %r11\n"
    "   mov 0x58(%rdi), %r12\n"
    "   mov 0x60(%rdi), %r13\n"
    "   mov 0x68(%rdi), %r14\n"
    "   mov 0x70(%rdi), %r15\n"
    "   mov 0x28(%rdi), %rdi\n"
    "   jnz 1f\n"
    "   vmlaunch\n"
    "   jmp 2f\n"
    "1: vmresume\n"
    "2: mov $1, %eax\n"                 /* VMX_RUN_FAIL_INVALID */
    "   jc 3f\n"
    "   mov $2, %eax\n"                 /* VMX_RUN_FAIL_VALID */
    "3: pop %rdi\n"
    "   jmp 4f\n"
    "   .globl vmx_exit_point\n"
    "vmx_exit_point:\n"
    "   push %rdi\n"
    "   mov 8(%rsp), %rdi\n"
    "   mov %rax, 0x00(%rdi)\n"
    "   mov %rbx, 0x08(%rdi)\n"
    "   mov %rcx, 0x10(%rdi)\n"
    "   mov %rdx, 0x18(%rdi)\n"
    "   mov %rsi, 0x20(%rdi)\n"
    "   mov %rbp, 0x30(%rdi)\n"
    "   mov %r8, 0x38(%rdi)\n"
    "   mov %r9, 0x40(%rdi)\n"
    "   mov %r10, 0x48(%rdi)\n"
    "   mov %r11, 0x50(%rdi)\n"
    "   mov %r12, 0x58(%rdi)\n"
    "   mov %r13, 0x60(%rdi)\n"
    "   mov %r14, 0x68(%rdi)\n"
    "   mov %r15, 0x70(%rdi)\n"
    "   pop 0x28(%rdi)\n"
    "   pop %rdi\n"
    "   xor %eax, %eax\n"               /* VMX_RUN_EXIT */
    "4: pop %r15\n"
    "   pop %r14\n"
    "   pop %r13\n"
    "   pop %r12\n"
    "   pop %rbx\n"
    "   pop %rbp\n"
    "   ret\n"
);
