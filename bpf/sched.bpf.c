// SPDX-License-Identifier: GPL-2.0
/*
 * The scheduler collector: run-queue latency (from the moment a task becomes
 * runnable, woken or preempted, to the moment it runs) in a log2 histogram
 * per cgroup, and context switches per process and kind.
 *
 * sched_switch runs on every context switch, so it is kept to per-CPU maps
 * and task storage (no map keyed by thread id). tp_btf only: task storage
 * needs the typed task pointers raw_tp does not give.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "sonde.h"

char LICENSE[] SEC("license") = "GPL";

/* When a task was last made runnable; 0 once it ran. */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, __u64);
} runnable_since SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 2048);
	__type(key, __u64);
	__type(value, struct sonde_hist);
} runq_latency SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 8192);
	__type(key, struct switch_key);
	__type(value, __u64);
} switches SEC(".maps");

SONDE_MAP_FULL_COUNTER(SCHED_BOUNDED_MAPS);

static __always_inline void made_runnable(struct task_struct *task)
{
	__u64 *since;

	if (!task->pid)
		return; /* an idle task */
	since = bpf_task_storage_get(&runnable_since, task, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (since)
		*since = bpf_ktime_get_ns();
}

SEC("tp_btf/sched_wakeup")
int BPF_PROG(btf_wakeup, struct task_struct *task)
{
	made_runnable(task);
	return 0;
}

SEC("tp_btf/sched_wakeup_new")
int BPF_PROG(btf_wakeup_new, struct task_struct *task)
{
	made_runnable(task);
	return 0;
}

/* Runs as `prev`, which is still current. */
SEC("tp_btf/sched_switch")
int BPF_PROG(btf_switch, bool preempt, struct task_struct *prev, struct task_struct *next,
	     unsigned int prev_state)
{
	struct switch_key key = {};
	__u64 *since, cgroup;

	if (prev->pid) {
		/* Still runnable when switched out: it was preempted and waits
		 * in the run queue again. */
		if (preempt || prev_state == 0) {
			key.kind = SWITCH_INVOLUNTARY;
			made_runnable(prev);
		} else {
			key.kind = SWITCH_VOLUNTARY;
		}
		key.who.cgroup = bpf_get_current_cgroup_id();
		__builtin_memcpy(key.who.comm, prev->comm, TASK_COMM_LEN);
		if (sonde_percpu_count(&switches, &key))
			sonde_count_map_full(&map_full, SCHED_MAP_SWITCHES);
	}

	if (!next->pid)
		return 0;
	since = bpf_task_storage_get(&runnable_since, next, 0, 0);
	if (!since || !*since)
		return 0;
	cgroup = next->cgroups->dfl_cgrp->kn->id;
	if (sonde_hist_add(&runq_latency, &cgroup, bpf_ktime_get_ns() - *since))
		sonde_count_map_full(&map_full, SCHED_MAP_LATENCY);
	*since = 0;
	return 0;
}
