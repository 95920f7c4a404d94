// SPDX-License-Identifier: GPL-2.0
/*
 * The probe sonde_test:tick of the tests' USDT target (usdt_target.c),
 * attached from the section as ebpf_exporter attaches it: libbpf reads the
 * probe's location and argument specs from the target's .note.stapsdt and
 * puts a uprobe there. USDT_TARGET, the target's absolute path, is given at
 * compile time. Each tick is keyed by its number modulo 3, the DNS name in
 * wire format and the 4-byte tag its other arguments point to (read with
 * bpf_probe_read_user); three keys for the target's one name and tag.
 */
#include "test.h"
#include <bpf/usdt.bpf.h>

#ifndef USDT_TARGET
#error "USDT_TARGET: the absolute path of the usdt_target binary"
#endif

#define NAME_LEN 16

struct tick_key {
	__u32 slot;
	__u8 tag[4];
	__u8 name[NAME_LEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, struct tick_key);
	__type(value, __u64);
} usdt_ticks_total SEC(".maps");

SEC("usdt/" USDT_TARGET ":sonde_test:tick")
int BPF_USDT(count_tick, unsigned long number, const void *name, const void *tag)
{
	struct tick_key key = { .slot = number % 3 };

	bpf_probe_read_user(key.name, sizeof(key.name), name);
	bpf_probe_read_user(key.tag, sizeof(key.tag), tag);
	test_increment(&usdt_ticks_total, &key, 1);
	return 0;
}
