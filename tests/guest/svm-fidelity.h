/*
 * nkvm-guest: labels of the "svm-fidelity" scenario's L2 snippets,
 * defined by the assembly in svm-fidelity.c.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef NKVM_SVM_FIDELITY_H
#define NKVM_SVM_FIDELITY_H

#include <stdint.h>

extern char svm_fid_lmsw[], svm_fid_lmsw_insn[], svm_fid_lmsw_end[];
extern char svm_fid_movcr0[], svm_fid_movcr0_end[];
extern char svm_fid_cr_reads[], svm_fid_cr_reads_end[];
extern char svm_fid_movfromcr3[], svm_fid_movfromcr4[];
extern char svm_fid_rdtscp[];
extern char svm_fid_xsetbv[], svm_fid_xsetbv_insn[];
extern char svm_fid_inject[];
extern char svm_fid_pae32[], svm_fid_pae32_end[];
extern char svm_fid_handler[], svm_fid_handler_vmmcall[];
extern volatile uint64_t svm_fid_pushed_rip;  /* L2's handler writes */
extern char svm_fid_ac_store[], svm_fid_ac_store_insn[], svm_fid_ac_store_end[];
extern char svm_fid_ac_load[], svm_fid_ac_load_insn[];
extern char svm_fid_ac_aligned[], svm_fid_ac_aligned_end[];
extern volatile uint64_t svm_fid_ac_buf[2];   /* L2 at CPL 3 writes */

#endif
