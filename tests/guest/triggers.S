/*
 * nkvm-guest: instructions that raise the events under test
 *
 * They live in assembly so that the return addresses the checks expect
 * are exact labels, not guesses about what the compiler emitted.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "nkvm-guest.h"

    .text
    .code64

    /*
     * INT n and INT3 are traps: the saved RIP is the next instruction
     * (Intel SDM Vol. 3A 6.5, 6.12.1).
     */
    .globl trigger_int80
trigger_int80:
    int $0x80
    .globl trigger_int80_ret
trigger_int80_ret:
    ret

    .globl trigger_int3
trigger_int3:
    int3                                /* one-byte 0xcc form */
    .globl trigger_int3_ret
trigger_int3_ret:
    ret

    /*
     * INTO is invalid (#UD) in 64-bit mode (SDM Vol. 2A "INT n/INTO/INT3/
     * INT1", 64-bit mode column; AMD APM Vol. 3 "INTO"), so run it from a
     * 32-bit compatibility-mode code segment.  The #OF is still delivered
     * through the 64-bit IDT to a 64-bit handler, which IRETQs back to
     * compatibility mode.
     *
     * The upper halves of the general registers are undefined after a
     * switch between 64-bit and compatibility mode (SDM Vol. 1 3.4.1.1),
     * so save every callee-saved register and RSP in memory.
     */
    .globl trigger_into_compat
trigger_into_compat:
    push %rbx
    push %rbp
    push %r12
    push %r13
    push %r14
    push %r15
    mov %rsp, into_saved_rsp(%rip)
    pushq $GDT_CODE32
    lea into_compat32(%rip), %rax
    push %rax
    lretq

    .code32
into_compat32:
    mov $0x7f, %al
    add $1, %al                         /* signed overflow sets OF */
    into
    .globl trigger_into_ret
trigger_into_ret:
    ljmp $GDT_CODE64, $into_back64

    .code64
into_back64:
    mov $GDT_DATA, %eax
    mov %eax, %ss
    mov into_saved_rsp(%rip), %rsp
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %rbp
    pop %rbx
    ret

    /*
     * #PF is a fault: the saved RIP is the faulting instruction itself,
     * so the store below is retried after the handler maps the page.
     */
    .globl trigger_pf_write
trigger_pf_write:
    .globl trigger_pf_insn
trigger_pf_insn:
    mov %rsi, (%rdi)
    ret

    /*
     * Wait for an NMI with interrupts disabled: with IF=0 only NMI (or
     * SMI/INIT, which nothing here sends) ends HLT.  When an interrupt
     * wakes the CPU from HLT the saved RIP is the instruction after HLT
     * (SDM Vol. 2A "HLT").  The count is rechecked so a wakeup that is
     * not our NMI does not end the wait.
     */
    .globl wait_for_nmi
wait_for_nmi:
    cli
1:  hlt
    .globl wait_for_nmi_after_hlt
wait_for_nmi_after_hlt:
    cmpl $0, (%rdi)
    je 1b
    ret

    .bss
    .balign 8
into_saved_rsp:
    .skip 8

    /* No executable stack needed (silences ld for hand-written objects). */
    .section .note.GNU-stack, "", @progbits
