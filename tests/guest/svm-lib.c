/*
 * nkvm-guest: helpers shared by the SVM hypervisor scenarios
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "svm-lib.h"

bool svm_probe(uint32_t *rev, uint32_t *asids, uint32_t *features)
{
    uint32_t a, b, c, d;

    cpuid(0x80000000, &a, &b, &c, &d);
    if (a < 0x8000000a) {
        return false;
    }
    cpuid(0x80000001, &a, &b, &c, &d);
    if (!(c & (1 << 2))) {
        return false;
    }
    cpuid(0x8000000a, &a, &b, &c, &d);
    *rev = a & 0xff;
    *asids = b;
    *features = d;
    return true;
}

void svm_enable(void *hsave)
{
    wrmsr(MSR_EFER, rdmsr(MSR_EFER) | EFER_SVME);
    wrmsr(MSR_VM_HSAVE_PA, (uint64_t)hsave);
}

static void vmcb_seg(uint8_t *vmcb, unsigned off, uint16_t sel,
                     uint16_t attr)
{
    vmcb_w16(vmcb, off, sel);
    vmcb_w16(vmcb, off + 2, attr);
    vmcb_w32(vmcb, off + 4, 0xffffffff);
    vmcb_w64(vmcb, off + 8, 0);
}

void svm_vmcb_mirror_l1(uint8_t *vmcb)
{
    struct __attribute__((packed)) { uint16_t limit; uint64_t base; } gdtr;
    uint64_t cr0, cr3, cr4;

    asm volatile("sgdt %0" : "=m"(gdtr));
    asm volatile("mov %%cr0, %0" : "=r"(cr0));
    asm volatile("mov %%cr3, %0" : "=r"(cr3));
    asm volatile("mov %%cr4, %0" : "=r"(cr4));

    vmcb_seg(vmcb, VMCB_ES, GDT_DATA, ATTR_DATA);
    vmcb_seg(vmcb, VMCB_CS, GDT_CODE64, ATTR_CODE64);
    vmcb_seg(vmcb, VMCB_SS, GDT_DATA, ATTR_DATA);
    vmcb_seg(vmcb, VMCB_DS, GDT_DATA, ATTR_DATA);
    vmcb_w32(vmcb, VMCB_GDTR + 4, gdtr.limit);
    vmcb_w64(vmcb, VMCB_GDTR + 8, gdtr.base);
    vmcb_w64(vmcb, VMCB_EFER, rdmsr(MSR_EFER));
    vmcb_w64(vmcb, VMCB_CR0, cr0);
    vmcb_w64(vmcb, VMCB_CR3, cr3);
    vmcb_w64(vmcb, VMCB_CR4, cr4);
    vmcb_w64(vmcb, VMCB_DR7, 0x400);
    vmcb_w64(vmcb, VMCB_DR6, 0xffff0ff0);
    vmcb_w64(vmcb, VMCB_RFLAGS, 0x2);
    vmcb_w64(vmcb, VMCB_RAX, 0);
    vmcb_w64(vmcb, VMCB_EVENT_INJ, 0);
}

void svm_vmrun(uint8_t *vmcb)
{
    asm volatile("push %%rbp\n\t"
                 "clgi\n\t"
                 "vmrun\n\t"
                 "stgi\n\t"
                 "pop %%rbp"
                 : : "a"((uint64_t)vmcb)
                 : "rbx", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10",
                   "r11", "r12", "r13", "r14", "r15", "memory", "cc");
}

_Static_assert(__builtin_offsetof(SvmGuestRegs, rdi) == 0x20 &&
               __builtin_offsetof(SvmGuestRegs, r15) == 0x68,
               "svm_vmrun_regs's offsets");

/*
 * RDI carries regs until the last load, and regs is kept on the stack
 * across VMRUN.  L2's registers are saved before STGI, so that an
 * interrupt L1 takes there cannot meet them.
 */
void svm_vmrun_regs(uint8_t *vmcb, SvmGuestRegs *regs)
{
    asm volatile("push %%rbp\n\t"
                 "push %%rdi\n\t"
                 "mov 0x00(%%rdi), %%rbx\n\t"
                 "mov 0x08(%%rdi), %%rcx\n\t"
                 "mov 0x10(%%rdi), %%rdx\n\t"
                 "mov 0x18(%%rdi), %%rsi\n\t"
                 "mov 0x28(%%rdi), %%rbp\n\t"
                 "mov 0x30(%%rdi), %%r8\n\t"
                 "mov 0x38(%%rdi), %%r9\n\t"
                 "mov 0x40(%%rdi), %%r10\n\t"
                 "mov 0x48(%%rdi), %%r11\n\t"
                 "mov 0x50(%%rdi), %%r12\n\t"
                 "mov 0x58(%%rdi), %%r13\n\t"
                 "mov 0x60(%%rdi), %%r14\n\t"
                 "mov 0x68(%%rdi), %%r15\n\t"
                 "mov 0x20(%%rdi), %%rdi\n\t"
                 "clgi\n\t"
                 "vmrun\n\t"
                 "push %%rdi\n\t"
                 "mov 8(%%rsp), %%rdi\n\t"
                 "mov %%rbx, 0x00(%%rdi)\n\t"
                 "mov %%rcx, 0x08(%%rdi)\n\t"
                 "mov %%rdx, 0x10(%%rdi)\n\t"
                 "mov %%rsi, 0x18(%%rdi)\n\t"
                 "mov %%rbp, 0x28(%%rdi)\n\t"
                 "mov %%r8, 0x30(%%rdi)\n\t"
                 "mov %%r9, 0x38(%%rdi)\n\t"
                 "mov %%r10, 0x40(%%rdi)\n\t"
                 "mov %%r11, 0x48(%%rdi)\n\t"
                 "mov %%r12, 0x50(%%rdi)\n\t"
                 "mov %%r13, 0x58(%%rdi)\n\t"
                 "mov %%r14, 0x60(%%rdi)\n\t"
                 "mov %%r15, 0x68(%%rdi)\n\t"
                 "pop 0x20(%%rdi)\n\t"
                 "stgi\n\t"
                 "pop %%rdi\n\t"
                 "pop %%rbp"
                 : : "a"((uint64_t)vmcb), "D"(regs)
                 : "rbx", "rcx", "rdx", "rsi", "r8", "r9", "r10", "r11",
                   "r12", "r13", "r14", "r15", "memory", "cc");
}
