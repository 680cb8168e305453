/* SPDX-License-Identifier: MIT */
#ifndef NVP_CRC32_H
#define NVP_CRC32_H

#include <stddef.h>
#include <stdint.h>

/* Continues a CRC-32 over len bytes; start with crc = 0. */
uint32_t nvp__crc32(uint32_t crc, const void *data, size_t len);

#endif
