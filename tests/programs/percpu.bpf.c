// SPDX-License-Identifier: GPL-2.0
/*
 * The tests' getppid calls in a one-slot per-CPU array, read twice: summed
 * over CPUs, and per CPU (a `cpu` label). Bounded by construction: one
 * slot per map.
 */
#include "test.h"

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} ppid_calls_total SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} ppid_calls_by_cpu_total SEC(".maps");

SEC("tp_btf/sys_enter")
int BPF_PROG(count_ppid, struct pt_regs *regs, long id)
{
	char comm[16];
	__u32 zero = 0;
	__u64 *value;

	if (id != 110 || !test_task(comm))
		return 0;
	value = bpf_map_lookup_elem(&ppid_calls_total, &zero);
	if (value)
		*value += 1;
	value = bpf_map_lookup_elem(&ppid_calls_by_cpu_total, &zero);
	if (value)
		*value += 1;
	return 0;
}
