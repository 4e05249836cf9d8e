/*
 * Decoder for x86 software-interrupt instructions
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "soft-insn.h"

#include <string.h>

#define OPC_INT3    0xcc
#define OPC_INT_N   0xcd
#define OPC_INTO    0xce
#define OPC_INT1    0xf1
#define PFX_LOCK    0xf0

static bool is_legacy_prefix(uint8_t b)
{
    switch (b) {
    case 0xf0: /* LOCK */
    case 0xf2: /* REPNE */
    case 0xf3: /* REP */
    case 0x2e: /* CS */
    case 0x36: /* SS */
    case 0x3e: /* DS */
    case 0x26: /* ES */
    case 0x64: /* FS */
    case 0x65: /* GS */
    case 0x66: /* operand size */
    case 0x67: /* address size */
        return true;
    default:
        return false;
    }
}

static bool is_rex_byte(uint8_t b)
{
    return (b & 0xf0) == 0x40;
}

static bool mode_is_valid(SoftInsnMode mode)
{
    return mode == SOFT_INSN_MODE_16 || mode == SOFT_INSN_MODE_32 ||
           mode == SOFT_INSN_MODE_64;
}

int soft_insn_decode(const uint8_t *bytes, size_t len, SoftInsnMode mode,
                     SoftInsn *out)
{
    size_t i;
    bool lock = false;
    bool rex_before_opcode = false;
    SoftInsnKind kind;
    uint8_t vector;
    size_t insn_len;
    uint8_t opc;

    if (!out) {
        return SOFT_INSN_ERR_INVALID_ARG;
    }
    memset(out, 0, sizeof(*out));
    if ((!bytes && len) || !mode_is_valid(mode)) {
        return SOFT_INSN_ERR_INVALID_ARG;
    }

    /*
     * The length limit is tested before the input bound: once fifteen
     * prefixes are seen the CPU faults whatever follows, so reporting
     * "truncated" would send the caller to fetch bytes it does not need.
     */
    for (i = 0;; i++) {
        if (i >= SOFT_INSN_MAX_LENGTH) {
            return SOFT_INSN_ERR_TOO_LONG;
        }
        if (i >= len) {
            return SOFT_INSN_ERR_TRUNCATED;
        }
        if (is_legacy_prefix(bytes[i])) {
            lock |= bytes[i] == PFX_LOCK;
            /* A REX followed by a legacy prefix is ignored, not a fault. */
            rex_before_opcode = false;
            continue;
        }
        if (mode == SOFT_INSN_MODE_64 && is_rex_byte(bytes[i])) {
            /* Only the last of several REX bytes can take effect. */
            rex_before_opcode = true;
            continue;
        }
        break;
    }

    opc = bytes[i];
    switch (opc) {
    case OPC_INT3:
        kind = SOFT_INSN_KIND_INT3;
        vector = 3;
        insn_len = i + 1;
        break;
    case OPC_INT_N:
        kind = SOFT_INSN_KIND_INT_N;
        insn_len = i + 2;
        if (insn_len > SOFT_INSN_MAX_LENGTH) {
            return SOFT_INSN_ERR_TOO_LONG;
        }
        if (insn_len > len) {
            return SOFT_INSN_ERR_TRUNCATED;
        }
        vector = bytes[i + 1];
        break;
    case OPC_INTO:
        kind = SOFT_INSN_KIND_INTO;
        vector = 4;
        insn_len = i + 1;
        break;
    case OPC_INT1:
        kind = SOFT_INSN_KIND_INT1;
        vector = 1;
        insn_len = i + 1;
        break;
    default:
        /*
         * Outside 64-bit mode 40-4F never reach the prefix loop's REX
         * branch; give them their own error because a caller seeing
         * "REX-looking byte" with the wrong mode usually has the wrong
         * CS.L/CS.D rather than the wrong RIP.
         */
        return is_rex_byte(opc) ? SOFT_INSN_ERR_INC_DEC
                                : SOFT_INSN_ERR_NOT_SOFT;
    }

    /* SDM vol. 2, INT n/INTO/INT3/INT1: INTO is #UD in 64-bit mode. */
    if (kind == SOFT_INSN_KIND_INTO && mode == SOFT_INSN_MODE_64) {
        return SOFT_INSN_ERR_INTO_64;
    }
    /* None of the four is a lockable read-modify-write: #UD. */
    if (lock) {
        return SOFT_INSN_ERR_LOCK;
    }

    out->kind = kind;
    out->vector = vector;
    out->length = (uint8_t)insn_len;
    out->prefix_count = (uint8_t)i;
    out->has_rex = rex_before_opcode;
    return SOFT_INSN_OK;
}

const char *soft_insn_strerror(int err)
{
    switch (err) {
    case SOFT_INSN_OK:
        return "success";
    case SOFT_INSN_ERR_INVALID_ARG:
        return "invalid argument";
    case SOFT_INSN_ERR_TRUNCATED:
        return "instruction bytes truncated";
    case SOFT_INSN_ERR_NOT_SOFT:
        return "not a software interrupt instruction";
    case SOFT_INSN_ERR_TOO_LONG:
        return "instruction longer than 15 bytes (#GP)";
    case SOFT_INSN_ERR_INTO_64:
        return "INTO is invalid in 64-bit mode (#UD)";
    case SOFT_INSN_ERR_INC_DEC:
        return "40-4F is INC/DEC, not REX, outside 64-bit mode";
    case SOFT_INSN_ERR_LOCK:
        return "LOCK prefix on software interrupt (#UD)";
    default:
        return "unknown error";
    }
}

const char *soft_insn_kind_name(SoftInsnKind kind)
{
    switch (kind) {
    case SOFT_INSN_KIND_INT_N:
        return "INT n";
    case SOFT_INSN_KIND_INT3:
        return "INT3";
    case SOFT_INSN_KIND_INTO:
        return "INTO";
    case SOFT_INSN_KIND_INT1:
        return "INT1";
    case SOFT_INSN_KIND_NONE:
    default:
        return "none";
    }
}

bool soft_insn_matches(const SoftInsn *insn, uint8_t vector,
                       SoftInsnKind kind)
{
    if (!insn || insn->kind == SOFT_INSN_KIND_NONE) {
        return false;
    }
    return insn->kind == kind && insn->vector == vector;
}
