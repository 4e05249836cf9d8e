/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * kvm_nested_state blobs for the unit tests, built from the uAPI layouts
 * (<linux/kvm.h>, asm/kvm.h) rather than from the decoder under test.
 */

#ifndef TESTS_UNIT_NESTED_BLOB_H
#define TESTS_UNIT_NESTED_BLOB_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <glib.h>
#include <linux/kvm.h>

#include "nested-state.h"

#define SVM_VMCB_PA (offsetof(struct kvm_nested_state, hdr) + \
                     offsetof(struct kvm_svm_nested_state_hdr, vmcb_pa))
#define VMX_HDR(f) (offsetof(struct kvm_nested_state, hdr) + \
                    offsetof(struct kvm_vmx_nested_state_hdr, f))
#define DATA offsetof(struct kvm_nested_state, data)
#define GM KVM_STATE_NESTED_GUEST_MODE

static inline void put16(uint8_t *p, uint16_t v)
{
    memcpy(p, &v, 2);
}

static inline void put32(uint8_t *p, uint32_t v)
{
    memcpy(p, &v, 4);
}

static inline void put64(uint8_t *p, uint64_t v)
{
    memcpy(p, &v, 8);
}

static inline uint32_t get32(const uint8_t *p)
{
    uint32_t v;

    memcpy(&v, p, 4);
    return v;
}

/*
 * Header per struct kvm_nested_state: flags, format, size, hdr.  The
 * buffer always has room for the largest blob; free with g_free().
 */
static inline uint8_t *ns_blob(uint16_t flags, uint16_t format,
                               uint32_t size)
{
    uint8_t *b = g_malloc0(NESTED_STATE_VMX_MAX);

    put16(b + offsetof(struct kvm_nested_state, flags), flags);
    put16(b + offsetof(struct kvm_nested_state, format), format);
    put32(b + offsetof(struct kvm_nested_state, size), size);
    return b;
}

/* In VMX operation with a current vmcs12 of the right revision. */
static inline uint8_t *vmx_blob(uint16_t flags, uint32_t size)
{
    uint8_t *b = ns_blob(flags, KVM_STATE_NESTED_FORMAT_VMX, size);

    put64(b + VMX_HDR(vmxon_pa), 0x100000);
    put64(b + VMX_HDR(vmcs12_pa), 0x200000);
    put32(b + DATA, NESTED_VMCS12_REVISION);      /* vmcs12.hdr */
    return b;
}

#endif /* TESTS_UNIT_NESTED_BLOB_H */
