// SPDX-License-Identifier: GPL-2.0
/*
 * Kernel addresses for the ksym and kstack decoders, from raw_tp sys_enter
 * of the tests' processes:
 * - read(): the read_iter function of the file read (for /dev/null,
 *   read_iter_null), found through the task's file table;
 * - getppid(): the kernel stack the raw tracepoint runs on, STACK_DEPTH
 *   frames at most, zero-filled after the last.
 * One key per distinct function or stack of the tests' few calls.
 */
#include "test.h"
#include <bpf/bpf_core_read.h>

#define STACK_DEPTH 16
#define NR_READ 0
#define NR_GETPPID 110

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u64);
	__type(value, __u64);
} read_functions_total SEC(".maps");

struct stack_key {
	__u64 frames[STACK_DEPTH];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, struct stack_key);
	__type(value, __u64);
} getppid_stacks_total SEC(".maps");

/* The read_iter of the file at descriptor fd of the current task, 0 when
 * there is none. */
static __always_inline __u64 read_iter_of(unsigned long fd)
{
	struct task_struct *task = (void *)bpf_get_current_task();
	struct file **files = BPF_CORE_READ(task, files, fdt, fd);
	unsigned int max_fds = BPF_CORE_READ(task, files, fdt, max_fds);
	struct file *file = NULL;

	if (fd >= max_fds)
		return 0;
	bpf_probe_read_kernel(&file, sizeof(file), &files[fd]);
	if (!file)
		return 0;
	return (__u64)BPF_CORE_READ(file, f_op, read_iter);
}

SEC("raw_tp/sys_enter")
int BPF_PROG(record_addresses, struct pt_regs *regs, long id)
{
	char comm[16];

	if (!test_task(comm))
		return 0;
	if (id == NR_READ) {
		__u64 function = read_iter_of(BPF_CORE_READ(regs, di));

		if (function)
			test_increment(&read_functions_total, &function, 1);
	} else if (id == NR_GETPPID) {
		struct stack_key key = {};

		if (bpf_get_stack(ctx, key.frames, sizeof(key.frames), 0) > 0)
			test_increment(&getppid_stacks_total, &key, 1);
	}
	return 0;
}
