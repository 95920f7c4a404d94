// SPDX-License-Identifier: GPL-2.0
/*
 * Calls of libc's exit() by the tests' processes, from a uprobe on
 * libc.so.6 that libbpf resolves and attaches from the section name. One
 * slot.
 */
#include "test.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} libc_exits_total SEC(".maps");

SEC("uprobe/libc.so.6:exit")
int BPF_UPROBE(count_exit)
{
	char comm[16];
	__u32 zero = 0;
	__u64 *value;

	if (!test_task(comm))
		return 0;
	value = bpf_map_lookup_elem(&libc_exits_total, &zero);
	if (value)
		__sync_fetch_and_add(value, 1);
	return 0;
}
