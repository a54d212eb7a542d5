/* CRC32C (Castagnoli), the checksum on every urbd metadata block and wire
 * header. Standard convention: crc32c(0, "123456789", 9) == 0xE3069283.
 * Chain by passing the previous result as `crc`. */
#ifndef URBD_CRC32C_H
#define URBD_CRC32C_H

#include <stddef.h>
#include <stdint.h>

uint32_t crc32c(uint32_t crc, const void *buf, size_t len);

#endif
