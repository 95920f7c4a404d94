// SPDX-License-Identifier: GPL-2.0
/*
 * The process collector: execs, forks (new processes, not threads) and exits
 * per process name and cgroup, exits by reason, and OOM kills by victim.
 * Process events are rare next to syscalls, so one per-CPU hash of counters
 * serves them all; it is double-buffered (sonde.h), user space keeps the
 * totals.
 *
 * tp_btf first (typed task pointers read directly), raw_tp as the fallback
 * (the same code with CO-RE reads), tracefs tracepoints last. Those carry
 * pids, not tasks: exec and exit run in the task itself, a forked process is
 * found on its parent's children list, but an OOM victim is known only by
 * pid and name, so its kill is counted without its cgroup (no unit or
 * container label).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "sonde.h"

char LICENSE[] SEC("license") = "GPL";

/*
 * Double-buffered (sonde.h): a half holds one interval's events. A process
 * name that execs, forks and exits uses three keys (more for exits by
 * several reasons), so a half absorbs about 2,700 distinct (name, cgroup)
 * pairs an interval.
 */
SONDE_DOUBLE_BUFFERED(process_counts, BPF_MAP_TYPE_PERCPU_HASH, 8192, struct process_key, __u64);

SONDE_MAP_FULL_COUNTER(PROCESS_BOUNDED_MAPS);

static __always_inline void count(struct process_key *key)
{
	if (sonde_percpu_count(SONDE_HALF(process_counts), key))
		sonde_count_map_full(&map_full, PROCESS_MAP_COUNTS);
}

/* Runs in the new image: comm is already the new program's name. */
static __always_inline void on_exec(void)
{
	struct process_key key = { .event = PROCESS_EXEC };

	sonde_current(&key.who);
	count(&key);
}

/* Runs in the parent; a child sharing the parent's thread group is a thread. */
static __always_inline void on_fork(struct task_struct *child)
{
	struct process_key key = { .event = PROCESS_FORK };

	if (BPF_CORE_READ(child, pid) != BPF_CORE_READ(child, tgid))
		return;
	sonde_current(&key.who);
	count(&key);
}

/*
 * Runs in the exiting task. The process ends with its last thread: the one
 * that took the thread group's live count to zero (read from the task rather
 * than the tracepoint's group_dead argument, which older kernels lack).
 */
static __always_inline void on_exit(struct task_struct *task)
{
	struct process_key key = { .event = PROCESS_EXIT };
	int code;

	if (BPF_CORE_READ(task, signal, live.counter) != 0)
		return;
	/* wait(2)'s status: the signal in the low 7 bits, else the exit code. */
	code = BPF_CORE_READ(task, exit_code);
	if (code & 0x7f)
		key.reason = code & 0x7f;
	else if (code >> 8)
		key.reason = PROCESS_EXIT_NONZERO;
	sonde_current(&key.who);
	count(&key);
}

/* Runs in whichever task ran out of memory; the victim is another task. */
static __always_inline void on_oom_victim(struct task_struct *victim)
{
	struct process_key key = { .event = PROCESS_OOM_KILL };

	key.who.cgroup = BPF_CORE_READ(victim, cgroups, dfl_cgrp, kn, id);
	BPF_CORE_READ_STR_INTO(&key.who.comm, victim, comm);
	count(&key);
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(btf_exec)
{
	on_exec();
	return 0;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(btf_fork, struct task_struct *parent, struct task_struct *child)
{
	on_fork(child);
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(btf_exit, struct task_struct *task)
{
	on_exit(task);
	return 0;
}

SEC("tp_btf/mark_victim")
int BPF_PROG(btf_oom_victim, struct task_struct *victim)
{
	on_oom_victim(victim);
	return 0;
}

SEC("raw_tp/sched_process_exec")
int BPF_PROG(raw_exec)
{
	on_exec();
	return 0;
}

SEC("raw_tp/sched_process_fork")
int BPF_PROG(raw_fork, struct task_struct *parent, struct task_struct *child)
{
	on_fork(child);
	return 0;
}

SEC("raw_tp/sched_process_exit")
int BPF_PROG(raw_exit, struct task_struct *task)
{
	on_exit(task);
	return 0;
}

SEC("raw_tp/mark_victim")
int BPF_PROG(raw_oom_victim, struct task_struct *victim)
{
	on_oom_victim(victim);
	return 0;
}

SEC("tracepoint/sched/sched_process_exec")
int tp_exec(void *ctx)
{
	on_exec();
	return 0;
}

/*
 * Runs in the parent with only the child's pid. A new process has just been
 * added last to the forking task's children list; a new thread is never on
 * that list, so the last child's pid does not match it. (A child made with
 * CLONE_PARENT joins the grandparent's list and is missed.)
 */
SEC("tracepoint/sched/sched_process_fork")
int tp_fork(struct trace_event_raw_sched_process_fork *ctx)
{
	struct task_struct *parent = (struct task_struct *)bpf_get_current_task();
	struct list_head *last = BPF_CORE_READ(parent, children.prev);
	struct task_struct *child;

	if ((void *)last == (void *)parent + bpf_core_field_offset(struct task_struct, children))
		return 0; /* an empty list */
	child = (void *)last - bpf_core_field_offset(struct task_struct, sibling);
	if (BPF_CORE_READ(child, pid) == ctx->child_pid)
		on_fork(child);
	return 0;
}

SEC("tracepoint/sched/sched_process_exit")
int tp_exit(void *ctx)
{
	on_exit((struct task_struct *)bpf_get_current_task());
	return 0;
}

SEC("tracepoint/oom/mark_victim")
int tp_oom_victim(struct trace_event_raw_mark_victim *ctx)
{
	struct process_key key = { .event = PROCESS_OOM_KILL };

	bpf_probe_read_kernel_str(&key.who.comm, sizeof(key.who.comm),
				  (void *)ctx + (ctx->__data_loc_comm & 0xffff));
	count(&key);
	return 0;
}
