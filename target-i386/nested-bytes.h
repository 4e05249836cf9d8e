/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * Little-endian loads and stores on kvm_nested_state blobs, shared by
 * the nested-state codec and the restore edits.  The blob holds x86
 * structures (vmcb12, vmcs12), and its fields sit at offsets that need
 * not suit the host type's alignment, hence memcpy().
 */

#ifndef TARGET_I386_NESTED_BYTES_H
#define TARGET_I386_NESTED_BYTES_H

#include <stdint.h>
#include <string.h>
#include <glib.h>

static inline uint16_t nested_ld16(const uint8_t *p)
{
    uint16_t v;

    memcpy(&v, p, sizeof(v));
    return GUINT16_FROM_LE(v);
}

static inline uint32_t nested_ld32(const uint8_t *p)
{
    uint32_t v;

    memcpy(&v, p, sizeof(v));
    return GUINT32_FROM_LE(v);
}

static inline uint64_t nested_ld64(const uint8_t *p)
{
    uint64_t v;

    memcpy(&v, p, sizeof(v));
    return GUINT64_FROM_LE(v);
}

static inline void nested_st16(uint8_t *p, uint16_t v)
{
    v = GUINT16_TO_LE(v);
    memcpy(p, &v, sizeof(v));
}

static inline void nested_st32(uint8_t *p, uint32_t v)
{
    v = GUINT32_TO_LE(v);
    memcpy(p, &v, sizeof(v));
}

static inline void nested_st64(uint8_t *p, uint64_t v)
{
    v = GUINT64_TO_LE(v);
    memcpy(p, &v, sizeof(v));
}

#endif /* TARGET_I386_NESTED_BYTES_H */
