// SPDX-License-Identifier: GPL-2.0
/*
 * The syscalls collector: every syscall counted per (process name, syscall
 * number), its latency in a log2 histogram per syscall, failures per
 * (syscall, errno).
 *
 * Cost is the design constraint: this runs twice per syscall on every CPU.
 * The hot path touches only per-CPU memory and never inserts into a hash:
 * - counts live in a per-CPU hash; after a key's first sight it is a lookup
 *   and a plain increment, no atomics;
 * - the entry timestamp waits in a per-CPU slot tagged with the task, not in
 *   a map keyed by thread id. A syscall that blocks hands its slot over to
 *   task storage in sched_switch (which fires with the blocking task still
 *   current), and its exit finds it there. So only syscalls that sleep (and
 *   so cost microseconds already) pay for task storage.
 *
 * Two attach variants share the code: raw_tp (no tracefs, cheapest) and
 * tracefs tracepoints for kernels or permissions without raw_tp.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "sonde.h"

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct syscall_count_key);
	__type(value, __u64);
} syscall_counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct syscall_error_key);
	__type(value, __u64);
} syscall_errors SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SYSCALLS_MAX_NR);
	__type(key, __u32);
	__type(value, struct sonde_hist);
} syscall_latency SEC(".maps");

SONDE_MAP_FULL_COUNTER(SYSCALLS_BOUNDED_MAPS);

/* The syscall in flight on this CPU: which task, which syscall, since when. */
struct inflight {
	__u64 task;
	__u64 start_ns;
	__u32 nr;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct inflight);
} inflight_cpu SEC(".maps");

/* A syscall whose task was switched out before it returned. */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct inflight);
} inflight_task SEC(".maps");

static __always_inline void on_enter(long id)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct syscall_count_key key = {};
	struct inflight *slot;
	__u32 zero = 0;

	key.who.cgroup = bpf_get_current_cgroup_id();
	__builtin_memcpy(key.who.comm, task->comm, TASK_COMM_LEN);
	key.nr = (__u32)id;
	if (sonde_percpu_count(&syscall_counts, &key))
		sonde_count_map_full(&map_full, SYSCALLS_MAP_COUNTS);

	slot = bpf_map_lookup_elem(&inflight_cpu, &zero);
	if (!slot)
		return;
	slot->task = (__u64)task;
	slot->nr = key.nr;
	slot->start_ns = bpf_ktime_get_ns();
}

static __always_inline void on_exit(long ret)
{
	__u64 now = bpf_ktime_get_ns(), task = bpf_get_current_task();
	struct inflight *slot, *parked;
	struct sonde_hist *hist;
	__u64 start;
	__u32 zero = 0, nr;

	slot = bpf_map_lookup_elem(&inflight_cpu, &zero);
	if (!slot)
		return;
	if (slot->task == task) {
		start = slot->start_ns;
		nr = slot->nr;
		slot->task = 0;
	} else {
		/* Switched out meanwhile, or entered before sonde attached. */
		parked = bpf_task_storage_get(&inflight_task, bpf_get_current_task_btf(), 0, 0);
		if (!parked || !parked->task)
			return;
		start = parked->start_ns;
		nr = parked->nr;
		parked->task = 0;
	}

	hist = bpf_map_lookup_elem(&syscall_latency, &nr);
	if (hist) {
		hist->slots[sonde_hist_slot(now - start)] += 1;
		hist->sum_ns += now - start;
	}
	if (ret < 0 && ret >= -4095) {
		struct syscall_error_key key = { .nr = nr, .errno_value = (__u32)-ret };

		if (sonde_percpu_count(&syscall_errors, &key))
			sonde_count_map_full(&map_full, SYSCALLS_MAP_ERRORS);
	}
}

/* Runs as the outgoing task: park its syscall in flight, if any. */
static __always_inline void on_switch(void)
{
	struct inflight *slot, *parked;
	__u32 zero = 0;

	slot = bpf_map_lookup_elem(&inflight_cpu, &zero);
	if (!slot || slot->task != bpf_get_current_task())
		return;
	parked = bpf_task_storage_get(&inflight_task, bpf_get_current_task_btf(), 0,
				      BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (parked)
		*parked = *slot;
	slot->task = 0;
}

SEC("raw_tp/sys_enter")
int BPF_PROG(raw_sys_enter, struct pt_regs *regs, long id)
{
	on_enter(id);
	return 0;
}

SEC("raw_tp/sys_exit")
int BPF_PROG(raw_sys_exit, struct pt_regs *regs, long ret)
{
	on_exit(ret);
	return 0;
}

SEC("raw_tp/sched_switch")
int raw_sched_switch(void *ctx)
{
	on_switch();
	return 0;
}

SEC("tracepoint/raw_syscalls/sys_enter")
int tp_sys_enter(struct trace_event_raw_sys_enter *ctx)
{
	on_enter(ctx->id);
	return 0;
}

SEC("tracepoint/raw_syscalls/sys_exit")
int tp_sys_exit(struct trace_event_raw_sys_exit *ctx)
{
	on_exit(ctx->ret);
	return 0;
}

SEC("tracepoint/sched/sched_switch")
int tp_sched_switch(void *ctx)
{
	on_switch();
	return 0;
}
