// SPDX-License-Identifier: GPL-2.0
/*
 * cgroup_id_map: user space keeps test_cgroups filled with the ids of the
 * cgroups the config's regexps match; the tests' getppid calls are counted
 * only from those cgroups. test_cgroups holds at most the matching cgroups
 * (a test makes one); the counter is one slot.
 */
#include "test.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u64);
	__type(value, __u64);
} test_cgroups SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} cgroup_ppid_calls_total SEC(".maps");

SEC("tp_btf/sys_enter")
int BPF_PROG(count_in_cgroup, struct pt_regs *regs, long id)
{
	char comm[16];
	__u64 cgroup = bpf_get_current_cgroup_id(), *value;
	__u32 zero = 0;

	if (id != 110 || !test_task(comm) || !bpf_map_lookup_elem(&test_cgroups, &cgroup))
		return 0;
	value = bpf_map_lookup_elem(&cgroup_ppid_calls_total, &zero);
	if (value)
		__sync_fetch_and_add(value, 1);
	return 0;
}
