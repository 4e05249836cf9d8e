/*
 * nkvm-guest: interrupt entry stubs
 *
 * 256 stubs, ISR_STUB_SIZE bytes apart so main.c can compute each
 * vector's entry point without a table.  Each makes the stack look the
 * same (see IsrFrame in nkvm-guest.h) whether or not the CPU pushed an
 * error code.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "nkvm-guest.h"

/*
 * Vectors for which the CPU pushes an error code in 64-bit mode:
 * #DF 8, #TS 10, #NP 11, #SS 12, #GP 13, #PF 14, #AC 17, #CP 21,
 * #VC 29, #SX 30 (Intel SDM Vol. 3A 6.15, Table 6-1; AMD APM Vol. 2
 * 8.2 for #VC and #SX).
 */
#define HAS_ERROR_CODE(v) \
    ((v) == 8 || ((v) >= 10 && (v) <= 14) || (v) == 17 || (v) == 21 || \
     (v) == 29 || (v) == 30)

    .text
    .code64
    .balign ISR_STUB_SIZE
    .globl isr_stubs
isr_stubs:
    .set vec, 0
    .rept 256
    .balign ISR_STUB_SIZE
    .if HAS_ERROR_CODE(vec) == 0
    pushq $0
    .endif
    pushq $vec
    jmp isr_common
    .set vec, vec + 1
    .endr

isr_common:
    push %rax
    push %rbx
    push %rcx
    push %rdx
    push %rsi
    push %rdi
    push %rbp
    push %r8
    push %r9
    push %r10
    push %r11
    push %r12
    push %r13
    push %r14
    push %r15
    /*
     * The CPU already 16-byte aligned the frame (SDM Vol. 3A 6.14.2),
     * but realign anyway so the C ABI holds for any frame layout.
     * RBX is restored from the frame, so it can hold the old RSP.
     */
    mov %rsp, %rdi
    mov %rsp, %rbx
    and $-16, %rsp
    cld
    call *isr_handler(%rip)
    mov %rbx, %rsp
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %r11
    pop %r10
    pop %r9
    pop %r8
    pop %rbp
    pop %rdi
    pop %rsi
    pop %rdx
    pop %rcx
    pop %rbx
    pop %rax
    add $16, %rsp                       /* vector and error code */
    iretq

    /* No executable stack needed (silences ld for hand-written objects). */
    .section .note.GNU-stack, "", @progbits
