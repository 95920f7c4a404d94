// SPDX-License-Identifier: GPL-2.0
/*
 * Where the tests' getppid() calls come from, from raw_tp sys_enter: the
 * block device holding the task's executable (its superblock's s_dev,
 * re-encoded as new_encode_dev does, the form majorminor decodes) and the
 * task's cgroup v2 id. One key per (device, cgroup) of the tests' tasks.
 */
#include "test.h"
#include <bpf/bpf_core_read.h>

#define NR_GETPPID 110
#define MINORBITS 20

struct origin_key {
	__u64 cgroup;
	__u32 dev;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, struct origin_key);
	__type(value, __u64);
} getppid_origin_total SEC(".maps");

SEC("raw_tp/sys_enter")
int BPF_PROG(record_origin, struct pt_regs *regs, long id)
{
	struct task_struct *task = (void *)bpf_get_current_task();
	struct origin_key key = {};
	char comm[16];
	__u32 dev, major, minor;

	if (id != NR_GETPPID || !test_task(comm))
		return 0;
	dev = BPF_CORE_READ(task, mm, exe_file, f_inode, i_sb, s_dev);
	major = dev >> MINORBITS;
	minor = dev & ((1U << MINORBITS) - 1);
	key.dev = (minor & 0xff) | (major << 8) | ((minor & ~0xffU) << 12);
	key.cgroup = bpf_get_current_cgroup_id();
	test_increment(&getppid_origin_total, &key, 1);
	return 0;
}
