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

/*
 * DebugCtl.LBR snippets, called from L1: each sets DebugCtl.LBR, takes
 * one branch (the last one, from <name>_from to <name>_to), clears
 * DebugCtl.LBR and returns the DebugCtl it read just before that.
 */
uint64_t svm_fid_lbr_jmp(void);
uint64_t svm_fid_lbr_jcc(void);
uint64_t svm_fid_lbr_ret(void);
extern char svm_fid_lbr_jmp_from[], svm_fid_lbr_jmp_to[];
extern char svm_fid_lbr_jcc_from[], svm_fid_lbr_jcc_to[];
extern char svm_fid_lbr_ret_from[], svm_fid_lbr_ret_to[];
/*
 * LBR virtualization: L1 sets DebugCtl.LBR, jumps from lbrv_host_from to
 * lbrv_host_to, runs L2 at lbrv_guest with the VMCB, clears DebugCtl.LBR
 * and returns the DebugCtl it read right after the #VMEXIT.  L2 stores
 * the DebugCtl, LastBranchFromIP and LastBranchToIP it starts with in
 * svm_fid_lbrv_seen[], jumps from lbrv_guest_from to lbrv_guest_to and
 * exits with VMMCALL.
 */
uint64_t svm_fid_lbrv_host(uint8_t *vmcb);
extern char svm_fid_lbrv_host_from[], svm_fid_lbrv_host_to[];
extern char svm_fid_lbrv_guest[];
extern char svm_fid_lbrv_guest_from[], svm_fid_lbrv_guest_to[];
extern volatile uint64_t svm_fid_lbrv_seen[3];  /* L2 writes */

#endif
