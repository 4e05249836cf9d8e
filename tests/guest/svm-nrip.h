/*
 * nkvm-guest: labels of the "svm-nrip" scenario's L2 payload, defined by
 * the assembly in svm-nrip.c.  svm_l2_<name> is an instruction that L1
 * intercepts or injects behind, svm_l2_<name>_end the byte after it.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef NKVM_SVM_NRIP_H
#define NKVM_SVM_NRIP_H

#include <stdint.h>

extern char svm_l2_page[];
extern char svm_l2_start[];
extern char svm_l2_handler_vmmcall[];
extern char svm_l2_inj_elsewhere[];
extern char svm_l2_cpuid[], svm_l2_cpuid_end[];
extern char svm_l2_rdmsr[], svm_l2_rdmsr_end[];
extern char svm_l2_wrmsr[], svm_l2_wrmsr_end[];
extern char svm_l2_in_imm[], svm_l2_in_imm_end[];
extern char svm_l2_out_imm[], svm_l2_out_imm_end[];
extern char svm_l2_in_dx[], svm_l2_in_dx_end[];
extern char svm_l2_outw_dx[], svm_l2_outw_dx_end[];
extern char svm_l2_rep_outsb[], svm_l2_rep_outsb_end[];
extern char svm_l2_fs_a32_rep_outsb[], svm_l2_fs_a32_rep_outsb_end[];
extern char svm_l2_rex_in_imm[], svm_l2_rex_in_imm_end[];
extern char svm_l2_rep_insw_a32[], svm_l2_rep_insw_a32_end[];
extern char svm_l2_hlt[], svm_l2_hlt_end[];
extern char svm_l2_vmmcall[], svm_l2_vmmcall_end[];
extern char svm_l2_int3[], svm_l2_int3_end[];
extern char svm_l2_int80[], svm_l2_int80_end[];
extern char svm_l2_int_3[], svm_l2_int_3_end[];
extern char svm_l2_rdtsc[], svm_l2_rdtsc_end[];
extern char svm_l2_pause[], svm_l2_pause_end[];
extern char svm_l2_invd[], svm_l2_invd_end[];
extern char svm_l2_wbinvd[], svm_l2_wbinvd_end[];
extern char svm_l2_mov_cr0[], svm_l2_mov_cr0_end[];
extern char svm_l2_mov_dr7[], svm_l2_mov_dr7_end[];
extern char svm_l2_invlpg[], svm_l2_invlpg_end[];
extern char svm_l2_stgi[], svm_l2_stgi_end[];
extern char svm_l2_clgi[], svm_l2_clgi_end[];
extern char svm_l2_vmload[], svm_l2_vmload_end[];
extern char svm_l2_vmsave[], svm_l2_vmsave_end[];
extern char svm_l2_vmrun[], svm_l2_vmrun_end[];
extern char svm_l2_into[], svm_l2_into_end[];
extern char svm_l2_bound[], svm_l2_bound_end[];
extern char svm_l2_final[], svm_l2_final_end[];
extern char svm_l2_ud2[], svm_l2_ud2_end[];
extern char svm_l2_inj_int[], svm_l2_inj_int_end[];
extern char svm_l2_inj_int3[], svm_l2_inj_int3_end[];
extern char svm_l2_handler[], svm_l2_handler_end[];

/* written by L2's interrupt handler, behind the compiler's back */
extern volatile uint64_t svm_l2_pushed_rip, svm_l2_pushed_cs;

#endif
