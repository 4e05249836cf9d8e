/*
 * nkvm-guest: Multiboot entry and switch to 64-bit long mode
 *
 * QEMU's Multiboot loader (hw/i386/multiboot.c) refuses ELF64 images,
 * so the image is linked for x86-64 and then rewritten as ELF32 by
 * objcopy; code running before the switch is assembled with .code32.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "nkvm-guest.h"
#include "long-mode.inc"

#define MB_MAGIC        0x1badb002
#define MB_FLAGS        0x00000002      /* bit 1: want memory information */

    .section .multiboot, "a"
    .balign 4
    /* Multiboot Specification 0.6.96, 3.1.1: magic, flags, checksum */
    .long MB_MAGIC
    .long MB_FLAGS
    .long -(MB_MAGIC + MB_FLAGS)

    .data
    .balign 16
gdt:
    .quad 0                             /* null */
    .quad 0x00af9a000000ffff            /* 0x08: 64-bit code, L=1 D=0 */
    .quad 0x00cf92000000ffff            /* 0x10: flat data, B=1 */
    .quad 0x00cf9a000000ffff            /* 0x18: 32-bit code, L=0 D=1 */
gdt_end:

    /*
     * Pseudo-descriptor with a 64-bit base, so the same one serves LGDT
     * in 32-bit mode (which reads 6 bytes) and in 64-bit mode (10 bytes).
     */
    .balign 8
    .word 0
    .globl gdt_desc
gdt_desc:
    .word gdt_end - gdt - 1
    .quad gdt

    .bss
    .balign PAGE_SIZE
    .globl boot_pml4                    /* smp.S starts the APs on it */
boot_pml4:
    .skip PAGE_SIZE
boot_pdpt:
    .skip PAGE_SIZE
boot_pd:
    .skip PAGE_SIZE
    .globl boot_pt
boot_pt:
    .skip PAGE_SIZE
    .balign 16
boot_stack:
    .skip 16384
boot_stack_top:

    .section .text.entry, "ax"
    .code32
    .globl _start
_start:
    /*
     * Multiboot hands over in flat 32-bit protected mode with paging
     * off; EAX holds the magic, EBX the physical address of the info
     * structure.  Keep both in ESI/EBP, which nothing below touches.
     */
    cli
    cld
    mov %eax, %esi
    mov %ebx, %ebp

    /*
     * The loader may or may not zero the image's bss; the page tables
     * below rely on it, so do it here (before the stack, which is in it).
     */
    mov $__bss_start, %edi
    mov $__bss_end, %ecx
    sub %edi, %ecx
    xor %eax, %eax
    rep stosb
    mov $boot_stack_top, %esp

    /*
     * Identity map the first GiB: 0..2 MiB with 4 KiB pages (so tests
     * can unmap single pages, and so page 0 can stay not-present to
     * catch NULL dereferences), the rest with 2 MiB pages.
     */
    movl $(boot_pdpt + PTE_P + PTE_W), boot_pml4
    movl $(boot_pd + PTE_P + PTE_W), boot_pdpt
    movl $(boot_pt + PTE_P + PTE_W), boot_pd

    mov $1, %ecx
1:  mov %ecx, %eax
    shl $12, %eax
    or $(PTE_P + PTE_W), %eax
    mov %eax, boot_pt(, %ecx, 8)
    inc %ecx
    cmp $512, %ecx
    jb 1b

    mov $1, %ecx
1:  mov %ecx, %eax
    shl $21, %eax
    or $(PTE_P + PTE_W + PTE_PS), %eax
    mov %eax, boot_pd(, %ecx, 8)
    inc %ecx
    cmp $512, %ecx
    jb 1b

    /* Our own GDT: the loader's is not guaranteed to survive. */
    lgdt gdt_desc
    ljmp $GDT_CODE32, $1f
1:  mov $GDT_DATA, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    mov %eax, %fs
    mov %eax, %gs

    enable_long_mode
    ljmp $GDT_CODE64, $long_entry

    .code64
long_entry:
    enter_long_mode_data
    lea boot_stack_top(%rip), %rsp
    mov %esi, %edi
    mov %ebp, %esi
    call guest_main
1:  cli
    hlt
    jmp 1b

    /* No executable stack needed (silences ld for hand-written objects). */
    .section .note.GNU-stack, "", @progbits
