/*
 * nkvm-guest: application processor start-up
 *
 * smp.c copies the real-mode part below to SMP_TRAMPOLINE (a page under
 * 1 MiB, which a start-up IPI names by its page number) with the GDT
 * pseudo-descriptor patched in, then sends INIT and SIPI.  The AP walks
 * the same path as the BSP in boot.S: protected mode on our GDT, PAE,
 * boot.S's page tables, EFER.LME, paging, then 64-bit code in the
 * image, on the stack smp.c left in smp_ap_stack.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "nkvm-guest.h"
#include "long-mode.inc"

#define TRAMP(sym)      (SMP_TRAMPOLINE + ((sym) - smp_trampoline))

    .text
    .code16
    .globl smp_trampoline, smp_trampoline_end, smp_tramp_gdt_desc
smp_trampoline:
    cli
    cld
    xor %ax, %ax
    mov %ax, %ds
    lgdtl TRAMP(smp_tramp_gdt_desc)
    mov %cr0, %eax
    or $CR0_PE, %eax
    mov %eax, %cr0
    ljmpl $GDT_CODE32, $TRAMP(smp_tramp32)

    .code32
smp_tramp32:
    mov $GDT_DATA, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    enable_long_mode
    ljmp $GDT_CODE64, $smp_ap_long

    .balign 8
    .word 0
smp_tramp_gdt_desc:             /* limit and 32-bit base, from gdt_desc */
    .word 0
    .long 0
smp_trampoline_end:

    .code64
smp_ap_long:
    enter_long_mode_data
    mov smp_ap_stack(%rip), %rsp
    call smp_ap_main
1:  cli
    hlt
    jmp 1b

    .section .note.GNU-stack, "", @progbits
