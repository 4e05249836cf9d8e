/*
 * nkvm-guest: event triggers of the "events-*" scenarios (events.c)
 *
 * The scenarios take over isr.S's stubs (isr_handler), so that their
 * handlers can count and check events without the smoke scenarios'
 * one-shot bookkeeping in main.c.  The triggers live here so that every
 * return address a check expects is an exact label.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "nkvm-guest.h"

    .text
    .code64

    /*
     * events_wait_nmi(count, target): HLT with IF=0 until *count reaches
     * target.  Only an NMI ends such a HLT, and its return address is the
     * instruction after HLT.  events_passes counts how often the code
     * after HLT ran, so the handler can tell whether a second NMI came
     * straight after the first one's IRET, before anything else ran.
     */
    .globl events_wait_nmi
events_wait_nmi:
    cli
1:  hlt
    .globl events_wait_nmi_after_hlt
events_wait_nmi_after_hlt:
    incl events_passes(%rip)
    cmp %esi, (%rdi)
    jb 1b
    ret

    /*
     * events_self_nmi(icr_lo, value, count, target): write the local
     * APIC's ICR to send an NMI to this CPU, then spin until the handler
     * has counted it.  The NMI arrives at some instruction boundary in
     * [events_self_nmi_window, events_self_nmi_window_end).
     */
    .globl events_self_nmi
events_self_nmi:
    movl %esi, (%rdi)
    .globl events_self_nmi_window
events_self_nmi_window:
1:  cmp %ecx, (%rdx)
    jb 1b
    .globl events_self_nmi_window_end
events_self_nmi_window_end:
    ret

    /* #PF is a fault: the return address is the store itself. */
    .globl events_pf_write
events_pf_write:
    .globl events_pf_insn
events_pf_insn:
    mov %rsi, (%rdi)
    ret

    /*
     * Single step: TF set by POPF takes effect after the instruction
     * that follows POPF (SDM Vol. 3A 18.3.1.4), so the #DB trap returns
     * to events_step_ret, with DR6.BS set.
     */
    .globl events_single_step
events_single_step:
    pushfq
    orq $0x100, (%rsp)
    popfq
    nop
    .globl events_step_ret
events_step_ret:
    ret

    /*
     * events_data_write(addr): a 4-byte store that DR0/DR7 watch.  Data
     * breakpoints are traps (SDM Vol. 3A 18.2.4): the return address is
     * the instruction after the store, and DR6.B0 is set.
     */
    .globl events_data_write
events_data_write:
    movl $0x600dda7a, (%rdi)
    .globl events_data_ret
events_data_ret:
    ret

    /*
     * events_sti_hlt(count, target): STI; HLT until the interrupt sent
     * beforehand has been counted.  The STI shadow covers HLT, so the
     * interrupt, already pending, is taken once HLT has executed and
     * returns to events_hlt_ret (SDM Vol. 2B "STI", Vol. 2A "HLT").
     */
    .globl events_sti_hlt
events_sti_hlt:
1:  sti
    .globl events_hlt_insn
events_hlt_insn:
    hlt
    .globl events_hlt_ret
events_hlt_ret:
    cli
    cmp %esi, (%rdi)
    jb 1b
    ret

    /* No executable stack needed (silences ld for hand-written objects). */
    .section .note.GNU-stack, "", @progbits
