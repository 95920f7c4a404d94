// SPDX-License-Identifier: GPL-2.0
/*
 * Syscalls of the tests' processes by (comm, syscall number), from raw_tp
 * sys_enter. Two maps share the key so that one config can decode the
 * number two ways (syscall names, a static map). Both hold at most the
 * tests' few comms times the syscalls they make.
 */
#include "test.h"

struct call_key {
	char comm[16];
	__u64 syscall;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct call_key);
	__type(value, __u64);
} calls_total SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct call_key);
	__type(value, __u64);
} calls_kind_total SEC(".maps");

SEC("raw_tp/sys_enter")
int BPF_PROG(count_call, struct pt_regs *regs, long id)
{
	struct call_key key = { .syscall = id };

	if (!test_task(key.comm))
		return 0;
	test_increment(&calls_total, &key, 1);
	test_increment(&calls_kind_total, &key, 1);
	return 0;
}
