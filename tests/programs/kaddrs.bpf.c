// SPDX-License-Identifier: GPL-2.0
/*
 * kaddrs: user space writes schedule()'s address into kaddr_schedule
 * before load. A getppid of the tests' processes stores its low 32 bits in
 * the one slot, which the test compares with /proc/kallsyms (a float
 * sample holds 32 bits exactly, not 64).
 */
#include "test.h"

const volatile __u64 kaddr_schedule = 0;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} kaddr_schedule_low32 SEC(".maps");

SEC("tp_btf/sys_enter")
int BPF_PROG(store_kaddr, struct pt_regs *regs, long id)
{
	char comm[16];
	__u32 zero = 0;
	__u64 *value;

	if (id != 110 || !test_task(comm))
		return 0;
	value = bpf_map_lookup_elem(&kaddr_schedule_low32, &zero);
	if (value)
		*value = kaddr_schedule & 0xffffffff;
	return 0;
}
