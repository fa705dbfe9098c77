package redisconn

import (
	"fmt"
	"strings"
)

// Slots is the number of hash slots of a Redis Cluster.
const Slots = 16384

// Slot is the cluster hash slot of key: CRC16 (XMODEM) of the key, or of
// its hash tag (the text between the first "{" and the next "}" when that
// is not empty), modulo 16384, as the Redis Cluster specification defines
// it. Keys with the same hash tag share a slot, which is how commands and
// transactions over several keys work on a cluster.
func Slot(key string) int {
	if s := strings.IndexByte(key, '{'); s >= 0 {
		if e := strings.IndexByte(key[s+1:], '}'); e > 0 {
			key = key[s+1 : s+1+e]
		}
	}
	var crc uint16
	for i := 0; i < len(key); i++ {
		crc ^= uint16(key[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return int(crc) % Slots
}

// SameSlot returns nil when all keys hash to one slot, or else an error
// that names two keys in different slots and says how to fix it.
func SameSlot(keys []string) error {
	for i := 1; i < len(keys); i++ {
		if a, b := Slot(keys[0]), Slot(keys[i]); a != b {
			return fmt.Errorf("keys %q (slot %d) and %q (slot %d) are in different hash slots of the Redis Cluster, "+
				"which cannot be changed together atomically: give every key of the operation the same hash tag, "+
				"e.g. order-{42}-items and order-{42}-total (Redis hashes only the text inside the first {...}), "+
				"or use a single Redis node or Sentinel", keys[0], a, keys[i], b)
		}
	}
	return nil
}
