/*
 * SVM NRIP save for TCG (qemu-nested-kvm fork)
 *
 * Copyright (c) 2026 qemu-nested-kvm contributors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef TARGET_I386_NESTED_KVM_TCG_NRIP_SAVE_H
#define TARGET_I386_NESTED_KVM_TCG_NRIP_SAVE_H

/*
 * Called by cpu_vmexit(): with NRIPS exposed, write nRIP into the VMCB,
 * the next sequential RIP recorded by the translator for the exits whose
 * #VMEXIT saves nRIP (APM vol. 2, 15.7.1),
 * zero for all others.  Without NRIPS the VMCB field is left alone.
 */
void nrip_save_vmexit(CPUX86State *env, uint64_t exit_code);

/*
 * EVENTINJ at VMRUN (APM vol. 2, 15.20).  Return address pushed for an
 * injected software interrupt (TYPE 4): NextRIP from the VMCB when NRIPS is
 * exposed, the guest RIP (upstream behaviour) otherwise.
 */
target_ulong nrip_save_soft_int_return(CPUX86State *env);

/*
 * An injected exception (TYPE 3) with vector 3 or 4 behaves like the trap
 * of INT3 or INTO (DPL check, 15.20).  With NRIPS exposed it is delivered
 * as a software exception returning to NextRIP.  No-op otherwise.
 */
void nrip_save_inject_exception(CPUX86State *env, int vector);

#endif
