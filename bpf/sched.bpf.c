// SPDX-License-Identifier: GPL-2.0
/*
 * The scheduler collector: run-queue latency (from the moment a task becomes
 * runnable, woken or preempted, to the moment it runs) in a log2 histogram
 * per cgroup, and context switches per process and kind.
 *
 * sched_switch runs on every context switch, so it is kept to per-CPU maps
 * and task storage (no map keyed by thread id). tp_btf first: task storage
 * needs the typed task pointers raw_tp does not give.
 *
 * tracefs tracepoints are the fallback. Their events carry pids, not tasks,
 * so the moment a task became runnable waits in an LRU hash keyed by thread
 * id (dearer per switch), and the task about to run is known only by pid:
 * its cgroup is not, so every run-queue wait goes to the histogram without
 * unit or container (cgroup 0).
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

/* The tracefs variant's runnable_since, by thread id; LRU, so never full. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, __u32);
	__type(value, __u64);
} runnable_since_tid SEC(".maps");

SONDE_MAP_FULL_COUNTER(SCHED_BOUNDED_MAPS);

/* Counts a switch away from the current task (the one switched out); its
 * comm is copied from `comm` when the caller has it at hand (cheaper than
 * the helper), else asked for. */
static __always_inline void count_switch(bool involuntary, const char *comm)
{
	struct switch_key key = {};

	key.kind = involuntary ? SWITCH_INVOLUNTARY : SWITCH_VOLUNTARY;
	key.who.cgroup = bpf_get_current_cgroup_id();
	if (comm)
		__builtin_memcpy(key.who.comm, comm, TASK_COMM_LEN);
	else
		bpf_get_current_comm(key.who.comm, sizeof(key.who.comm));
	if (sonde_percpu_count(&switches, &key))
		sonde_count_map_full(&map_full, SCHED_MAP_SWITCHES);
}

static __always_inline void observe_wait(__u64 cgroup, __u64 since)
{
	if (sonde_hist_add(&runq_latency, &cgroup, bpf_ktime_get_ns() - since))
		sonde_count_map_full(&map_full, SCHED_MAP_LATENCY);
}

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
	__u64 *since;

	if (prev->pid) {
		/* Still runnable when switched out: it was preempted and waits
		 * in the run queue again. */
		bool involuntary = preempt || prev_state == 0;

		if (involuntary)
			made_runnable(prev);
		count_switch(involuntary, prev->comm);
	}

	if (!next->pid)
		return 0;
	since = bpf_task_storage_get(&runnable_since, next, 0, 0);
	if (!since || !*since)
		return 0;
	observe_wait(next->cgroups->dfl_cgrp->kn->id, *since);
	*since = 0;
	return 0;
}

static __always_inline void tid_runnable(__u32 tid)
{
	__u64 now = bpf_ktime_get_ns();

	if (tid)
		bpf_map_update_elem(&runnable_since_tid, &tid, &now, BPF_ANY);
}

SEC("tracepoint/sched/sched_wakeup")
int tp_wakeup(struct trace_event_raw_sched_wakeup_template *ctx)
{
	tid_runnable(ctx->pid);
	return 0;
}

SEC("tracepoint/sched/sched_wakeup_new")
int tp_wakeup_new(struct trace_event_raw_sched_wakeup_template *ctx)
{
	tid_runnable(ctx->pid);
	return 0;
}

/*
 * The tracefs prev_state of a preempted task is TASK_REPORT_MAX, above every
 * state bit (__trace_sched_switch_state); 0 is a task still running.
 */
#define SONDE_TASK_REPORT_MAX 0x100

SEC("tracepoint/sched/sched_switch")
int tp_switch(struct trace_event_raw_sched_switch *ctx)
{
	__u32 next = ctx->next_pid;
	long prev_state = ctx->prev_state;
	__u64 *since;

	if (ctx->prev_pid) {
		bool involuntary = prev_state == 0 || prev_state >= SONDE_TASK_REPORT_MAX;

		if (involuntary)
			tid_runnable(ctx->prev_pid);
		count_switch(involuntary, 0);
	}

	if (!next)
		return 0;
	since = bpf_map_lookup_elem(&runnable_since_tid, &next);
	if (!since)
		return 0;
	observe_wait(0, *since);
	bpf_map_delete_elem(&runnable_since_tid, &next);
	return 0;
}
