// SPDX-License-Identifier: GPL-2.0
/*
 * One program this kernel takes (raw_tp sys_enter, counting the tests'
 * getpid calls) beside three it refuses (a kprobe, an fentry, a tracepoint
 * that does not exist): the first must count while the others are left
 * out. One slot.
 */
#include "test.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} pid_calls_total SEC(".maps");

static __always_inline void count(void)
{
	__u32 zero = 0;
	__u64 *value = bpf_map_lookup_elem(&pid_calls_total, &zero);

	if (value)
		__sync_fetch_and_add(value, 1);
}

SEC("raw_tp/sys_enter")
int BPF_PROG(count_getpid, struct pt_regs *regs, long id)
{
	char comm[16];

	if (id == 39 && test_task(comm))
		count();
	return 0;
}

SEC("kprobe/__x64_sys_getpid")
int BPF_KPROBE(kprobe_getpid)
{
	char comm[16];

	if (test_task(comm))
		count();
	return 0;
}

SEC("fentry/__x64_sys_getpid")
int BPF_PROG(fentry_getpid)
{
	char comm[16];

	if (test_task(comm))
		count();
	return 0;
}

SEC("tracepoint/sonde_test/no_such_event")
int missing_tracepoint(void *ctx)
{
	count();
	return 0;
}
