/*
 * nkvm-guest: labels of the "vmx-inject" scenario's L2 payload, defined
 * by the assembly in vmx-inject.c.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef NKVM_VMX_INJECT_H
#define NKVM_VMX_INJECT_H

#include <stdint.h>

extern char vmx_l2_vmcall[], vmx_l2_vmcall_end[];
extern char vmx_l2_hlt[];
extern char vmx_l2_nop[];
extern char vmx_l2_int81[];
extern char vmx_l2_stubs[];             /* 256 of 16 bytes */
extern char vmx_l2_handler_vmcall[];

/* written by L2's handler, behind the compiler's back */
extern volatile uint64_t vmx_l2_cr2;

#endif
