// SPDX-License-Identifier: GPL-2.0
/*
 * Failed syscalls of the tests' processes by (syscall, errno), from raw_tp
 * sys_exit: a negative return is the errno. The key holds the number of
 * the syscall (pt_regs' orig_ax) and the errno; the decoders name both.
 * At most the tests' few failing calls.
 */
#include "test.h"
#include <bpf/bpf_core_read.h>

struct error_key {
	__u64 syscall;
	__u32 errno;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, struct error_key);
	__type(value, __u64);
} syscall_errors_total SEC(".maps");

SEC("raw_tp/sys_exit")
int BPF_PROG(count_error, struct pt_regs *regs, long ret)
{
	struct error_key key = {};
	char comm[16];

	if (ret >= 0 || !test_task(comm))
		return 0;
	key.syscall = BPF_CORE_READ(regs, orig_ax);
	key.errno = -ret;
	test_increment(&syscall_errors_total, &key, 1);
	return 0;
}
