/*
 * nkvm-guest: labels and shared data of the "torture" scenario's L2
 * payload and L1 NMI handler, defined by the assembly in svm-torture.c.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef NKVM_SVM_TORTURE_H
#define NKVM_SVM_TORTURE_H

#include <stdint.h>

/* Distance between the L2 entry stubs, and between the soft-event slots */
#define T_L2_STUB_SIZE          16
#define T_L2_SLOT_SIZE          16

/* L2 code: each slot is "vmmcall; ud2" */
extern char t_l2_hw_rip[];          /* RIP of hardware events */
extern char t_l2_poison[];          /* next_rip of hardware events: unused */
extern char t_l2_soft_rip[];        /* slot per kind: RIP of soft events */
extern char t_l2_soft_next[];       /* slot per kind: their next_rip */
extern char t_l2_stubs[];           /* 256 stubs, T_L2_STUB_SIZE apart */
extern char t_l2_handler_vmmcall[]; /* where a handler exits without IRET */

/* L1's NMI and cross-IPI handlers: count and return */
extern char t_l1_nmi_entry[];
extern char t_l1_ipi_entry[];

/* Read by L2's handler: which vectors push an error code */
extern volatile uint8_t t_l2_errpushed[256];
/* L1's handlers count here, per vCPU (x2APIC ID): its own NMIs, */
extern volatile uint64_t t_l1_nmi_count[];
/* the NMIs from the previous vCPU, */
extern volatile uint64_t t_l1_cross_nmi_count[];
/* the fixed IPIs from the previous vCPU, */
extern volatile uint64_t t_l1_ipi_count[];
/* and whether the next NMI is one of those (svm-torture.c CROSS_NMI_*) */
extern volatile uint64_t t_cross_nmi_state[];

#endif
