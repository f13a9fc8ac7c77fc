/* model_file_internal.h: .kwsm format constants and encoders shared by model_file.c and tests.
 *
 * docs/MODEL_FORMAT.md describes the layout byte by byte; tests use these to
 * build damaged files and to recompute the checksum after editing a field.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef KWS_CORE_MODEL_FILE_INTERNAL_H
#define KWS_CORE_MODEL_FILE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "kws/snn.h"

#define KWSM_MAGIC "KWS1"      /* bytes 0..3 of every .kwsm file */
#define KWSM_VERSION 1         /* bumped on any layout change */
#define KWSM_HEADER_BYTES 1536 /* fixed header size of version 1 */

/* CRC-32/ISO-HDLC (the zlib and PNG CRC) of len bytes. */
uint32_t kwsm__crc32(const void *buf, size_t len);

/* Size in bytes of m encoded as a .kwsm file. */
size_t kwsm__encoded_size(const struct snn_model *m);

/* Encodes m into out (kwsm__encoded_size(m) bytes). Returns 0, or
 * KWS_EBADFIELD if the configuration is invalid, a parameter is not finite
 * or the verifier (m->verify) breaks the reader's rules; out is then untouched. */
int kwsm__encode(const struct snn_model *m, uint8_t *out);

#endif /* KWS_CORE_MODEL_FILE_INTERNAL_H */
