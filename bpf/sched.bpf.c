// SPDX-License-Identifier: GPL-2.0
/*
 * The scheduler collector: run-queue latency (from the moment a task becomes
 * runnable, woken or preempted, to the moment it runs) in a log2 histogram
 * per cgroup, context switches per process and kind, and CPU time per
 * process and mode (user, system).
 *
 * sched_switch runs on every context switch, so with tp_btf it touches only
 * task storage and a per-CPU histogram: a thread's switches are counted in
 * its own storage and moved into the shared `switches` hash, under the
 * thread's comm and cgroup, by the task iterator `flush_switches` (which user
 * space runs before each read) and at the thread's last switch (TASK_DEAD).
 * A count is in exactly one of the two places: the mover takes it with an
 * atomic exchange (`sonde_take`) before crediting the hash, so the two
 * movers of a dying thread never both credit it. tp_btf first: task
 * storage needs the typed task pointers raw_tp does not give.
 *
 * CPU time costs the switch nothing but one comparison. The kernel already
 * keeps each thread's precise run time, se.sum_exec_runtime (brought up to
 * date by update_curr when the switch dequeues or puts `prev`, before the
 * tracepoint fires), and tick-sampled utime and stime. The movers, not the
 * switch, turn them into user and system time, as the kernel's
 * cputime_adjust does for /proc/PID/stat and getrusage
 * (kernel/sched/cputime.c): the run time in the proportion of the samples
 * over the thread's whole life (no sample: all user), neither part ever
 * going back. A split per switch would be wrong as well as dearer: most runs
 * between two switches are shorter than a tick and hold no sample. The
 * iterator moves what a running thread ran up to its last tick; the last
 * switch moves its final run, so a thread living for a millisecond is
 * counted whole. Each thread's storage keeps the split moved so far; its two
 * movers (the iterator, and the thread's last switch on another CPU) take
 * its spin lock to advance it, so each nanosecond is moved once. A thread
 * that started before sonde loaded is counted from the first move (its
 * earlier CPU is not sonde's to count, as with any counter starting).
 *
 * tracefs tracepoints are the fallback. Their events carry pids, not tasks,
 * so the moment a task became runnable waits in an LRU hash keyed by thread
 * id (dearer per switch), and the task about to run is known only by pid:
 * its cgroup is not, so every run-queue wait goes to the histogram without
 * unit or container (cgroup 0). Nor is there CPU time: without task
 * pointers and the task iterator nothing reads the run time of threads.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "sonde.h"

char LICENSE[] SEC("license") = "GPL";

struct task_sched {
	__u64 runnable_since; /* when last made runnable; 0 once it ran */
	__u32 switches[2];    /* by enum switch_kind, not yet moved */
	/*
	 * The thread's run time moved so far (counted, or skipped as run
	 * before sonde), split as cputime_adjust splits it. Under `lock`.
	 */
	__u64 user_ns;
	__u64 system_ns;
	__u32 cpu_seen; /* 0 until the first move; under `lock` */
	struct bpf_spin_lock lock;
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct task_sched);
} task_sched SEC(".maps");

/*
 * All double-buffered (sonde.h): a half holds one interval's keys. Wait
 * histograms are per cgroup, so a half absorbs 2,048 cgroups whose tasks
 * waited in one interval; switches are per (process name, cgroup, kind),
 * two keys a name: 4,096 names an interval; CPU time is per (process name,
 * cgroup), both modes in one value: 4,096 names that ran in an interval,
 * about 400 KiB a half (24-byte key, 16-byte value, the element header),
 * preallocated.
 */
SONDE_DOUBLE_BUFFERED(runq_latency, BPF_MAP_TYPE_PERCPU_HASH, 2048, __u64, struct sonde_hist);
SONDE_DOUBLE_BUFFERED(switches, BPF_MAP_TYPE_HASH, 8192, struct switch_key, __u64);
SONDE_DOUBLE_BUFFERED(cpu_time, BPF_MAP_TYPE_HASH, 4096, struct proc_id, struct cpu_time);

/*
 * CLOCK_MONOTONIC when user space loaded the object (task->start_time's
 * clock): a thread started before has run time that is not sonde's to count.
 */
const volatile __u64 sonde_loaded_ns;

/* TASK_DEAD (include/linux/sched.h): `prev` switches away for the last time. */
#define SONDE_TASK_DEAD 0x80

/* The tracefs variant's runnable_since, by thread id; LRU, so never full. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, __u32);
	__type(value, __u64);
} runnable_since_tid SEC(".maps");

SONDE_MAP_FULL_COUNTER(SCHED_BOUNDED_MAPS);

/* Adds `n` switches of `kind` by `who` to the shared hash. */
static __always_inline void credit_switches(const struct proc_id *who, __u32 kind, __u64 n)
{
	struct switch_key key = { .who = *who, .kind = kind };

	if (sonde_shared_add(SONDE_HALF(switches), &key, n))
		sonde_count_map_full(&map_full, SCHED_MAP_SWITCHES);
}

/* Adds one switch of `kind` by the current task (still `prev`). */
static __always_inline void credit_current_switch(__u32 kind)
{
	struct proc_id who = {};

	sonde_current(&who);
	credit_switches(&who, kind, 1);
}

/*
 * a * b / c for a <= c, without the 128-bit product: a and c lose low bits
 * until c fits in 32 bits (a relative error under 2^-31), so neither partial
 * product overflows.
 */
static __always_inline __u64 scale(__u64 a, __u64 b, __u64 c)
{
	__u32 shift = c >> 32 ? sonde_log2(c >> 32) + 1 : 0;

	a >>= shift;
	c >>= shift;
	if (!c)
		return 0;
	return b / c * a + b % c * a / c;
}

/*
 * Advances a thread's split of its run time `rtime` into user and system
 * time from its tick samples `utime` and `stime`: cputime_adjust's rules
 * (module comment). The caller holds mine->lock.
 */
static __always_inline void adjust(struct task_sched *mine, __u64 rtime, __u64 utime, __u64 stime)
{
	if (mine->user_ns + mine->system_ns >= rtime)
		return;
	if (!stime)
		utime = rtime;
	else if (!utime)
		stime = rtime;
	else
		stime = scale(stime, rtime, stime + utime);
	if (stime < mine->system_ns)
		stime = mine->system_ns;
	utime = rtime - stime;
	if (utime < mine->user_ns) {
		utime = mine->user_ns;
		stime = rtime - utime;
	}
	mine->user_ns = utime;
	mine->system_ns = stime;
}

static __always_inline void credit_cpu(const struct proc_id *who, __u64 user, __u64 system)
{
	static const struct cpu_time zero;
	struct cpu_time *time = sonde_lookup_or_insert(SONDE_HALF(cpu_time), who, &zero);

	if (!time) {
		sonde_count_map_full(&map_full, SCHED_MAP_CPU_TIME);
		return;
	}
	__sync_fetch_and_add(&time->user_ns, user);
	__sync_fetch_and_add(&time->system_ns, system);
}

/*
 * Moves a thread's switch counts into `switches` and its run time since the
 * last move into `cpu_time` (module comment). Reading a running thread's
 * fields races with its CPU's ticks; a late value only leaves the rest for
 * the next move.
 */
static __always_inline void move_counts(struct task_struct *task, struct task_sched *mine)
{
	__u64 rtime = task->se.sum_exec_runtime, user, system;
	__u64 utime = task->utime, stime = task->stime;
	struct proc_id who = {};
	bool counted, seen = true;
	__u32 kind, n;

	bpf_spin_lock(&mine->lock);
	user = mine->user_ns;
	system = mine->system_ns;
	adjust(mine, rtime, utime, stime);
	user = mine->user_ns - user;
	system = mine->system_ns - system;
	if (!mine->cpu_seen) {
		mine->cpu_seen = 1;
		seen = false;
	}
	bpf_spin_unlock(&mine->lock);
	counted = (seen || task->start_time >= sonde_loaded_ns) && (user | system);

	if (!counted && !(mine->switches[SWITCH_VOLUNTARY] | mine->switches[SWITCH_INVOLUNTARY]))
		return;
	sonde_task_who(task, &who);
	if (counted)
		credit_cpu(&who, user, system);
	for (kind = SWITCH_VOLUNTARY; kind <= SWITCH_INVOLUNTARY; kind++) {
		n = sonde_take(&mine->switches[kind]);
		if (n)
			credit_switches(&who, kind, n);
	}
}

static __always_inline void observe_wait(__u64 cgroup, __u64 since)
{
	if (sonde_hist_add(SONDE_HALF(runq_latency), &cgroup, bpf_ktime_get_ns() - since))
		sonde_count_map_full(&map_full, SCHED_MAP_LATENCY);
}

static __always_inline void made_runnable(struct task_struct *task)
{
	struct task_sched *state;

	if (!task->pid)
		return; /* an idle task */
	state = bpf_task_storage_get(&task_sched, task, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (state)
		state->runnable_since = bpf_ktime_get_ns();
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
	struct task_sched *state;

	if (prev->pid) {
		/* Still runnable when switched out: it was preempted and waits
		 * in the run queue again. */
		__u32 kind = preempt || prev_state == 0 ? SWITCH_INVOLUNTARY : SWITCH_VOLUNTARY;

		state = bpf_task_storage_get(&task_sched, prev, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
		if (state) {
			if (kind == SWITCH_INVOLUNTARY)
				state->runnable_since = bpf_ktime_get_ns();
			__sync_fetch_and_add(&state->switches[kind & 1], 1);
			/* Its storage goes with it: nobody else will move it. */
			if (prev_state == SONDE_TASK_DEAD)
				move_counts(prev, state);
		} else {
			credit_current_switch(kind);
		}
	}

	if (!next->pid)
		return 0;
	state = bpf_task_storage_get(&task_sched, next, 0, 0);
	if (!state || !state->runnable_since)
		return 0;
	observe_wait(next->cgroups->dfl_cgrp->kn->id, state->runnable_since);
	state->runnable_since = 0;
	return 0;
}

/*
 * Run by user space (reading the iterator) before it reads `switches` and
 * `cpu_time`, and once at load. It gives every thread storage, so a thread
 * asleep since before sonde loaded has its run time skipped at the first
 * move, before it wakes, not an interval later.
 */
SEC("iter/task")
int flush_switches(struct bpf_iter__task *ctx)
{
	struct task_struct *task = ctx->task;
	struct task_sched *mine;

	if (!task)
		return 0;
	mine = bpf_task_storage_get(&task_sched, task, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (mine)
		move_counts(task, mine);
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
		credit_current_switch(involuntary ? SWITCH_INVOLUNTARY : SWITCH_VOLUNTARY);
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
