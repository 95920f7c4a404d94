// SPDX-License-Identifier: GPL-2.0
/*
 * The event stream: one struct sonde_event (sonde.h) through a ring buffer
 * for each process exec (file name and arguments), process exit, signal
 * whose default action ends the process, OOM kill, TCP connect, accept and
 * listen, and open for writing under a configured path. User space
 * (src/collect/events/) keeps the recent ones and feeds the event rules
 * (src/alert/sequence/).
 *
 * Cost first: every hook here is on a path far rarer than a syscall, and
 * each event is one ring reservation, a few reads through the task and one
 * submit. The hot hooks filter before they reserve: a signal not of the
 * fatal kind (SIGCHLD at every exit) and a state change that is not one of
 * the three TCP events return at once. The open programs are tracefs
 * tracepoints on openat, openat2, open and creat alone (a raw tracepoint
 * would run on every syscall); each tests the write flags first and
 * compares the path with the configured prefixes in the kernel, so an open
 * that no rule watches never reaches user space; with no prefix configured
 * none is attached. A relative path (to the working directory or to a
 * directory fd) cannot be compared here without walking the kernel's
 * dentries: its open goes to user space with the directory fd, which
 * resolves it through /proc and drops it unless it falls under a prefix.
 *
 * Invariant: an event is in the ring exactly once or counted lost, in
 * map_full's EVENTS_MAP_RING slot (sonde_bpf_map_full_total{map="events"}).
 * The reader wakes up once a quarter of the ring is used and drains it
 * every 50 ms, so a wakeup is not paid per event.
 *
 * Identity: a process is its pid plus the start time of its thread group
 * leader (task->start_time), because pids are reused; the parent likewise.
 * tp_btf first, raw_tp as the fallback (the same code, CO-RE reads).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "sonde.h"

char LICENSE[] SEC("license") = "GPL";

/*
 * Events of 632 bytes (640 in the ring). Its size is set before loading
 * (`[collect.bpf] event_ring_size`, a power of two; the default's headroom
 * is measured in BENCHMARKS.md, "Idle: ring buffers and start"); the
 * kernel maps it twice, so it is resident twice in sonde.
 */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
} events SEC(".maps");

/*
 * Listening port -> the process listening, for accepts: the handshake ends
 * in softirq context, in no process of the listener's. Bounded by the
 * listening sockets (an entry goes when its socket stops listening).
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct event_proc);
} listeners SEC(".maps");

SONDE_MAP_FULL_COUNTER(EVENTS_BOUNDED_MAPS);

/* Whether the reader sleeps, and the ring's quarter (sonde.h). */
SONDE_RING_READER();

/* Set before loading: path prefixes whose opens for writing are events. */
const volatile char write_prefixes[EVENT_PREFIXES][EVENT_PREFIX];
const volatile __u32 write_prefix_count;

/* Signals whose default action ends the process (signal(7)): not CHLD,
 * CONT, STOP, TSTP, TTIN, TTOU, URG or WINCH. */
#define FATAL_SIGNALS (0xfffffffeU & ~(0x7fU << 17) & ~(1U << 28))

#define O_WRITE_FLAGS (01 | 02 | 0100 | 01000) /* O_WRONLY O_RDWR O_CREAT O_TRUNC */

static __always_inline void fill_proc(struct task_struct *task, struct event_proc *p)
{
	struct task_struct *parent = BPF_CORE_READ(task, real_parent);

	p->pid = BPF_CORE_READ(task, tgid);
	p->start_ns = BPF_CORE_READ(task, group_leader, start_time);
	p->cgroup = BPF_CORE_READ(task, cgroups, dfl_cgrp, kn, id);
	BPF_CORE_READ_STR_INTO(&p->comm, task, comm);
	p->ppid = BPF_CORE_READ(parent, tgid);
	p->parent_start_ns = BPF_CORE_READ(parent, group_leader, start_time);
	BPF_CORE_READ_STR_INTO(&p->parent_comm, parent, comm);
}

static __always_inline struct sonde_event *reserve(__u32 kind)
{
	struct sonde_event *ev = bpf_ringbuf_reserve(&events, sizeof(*ev), 0);

	if (!ev) {
		sonde_count_map_full(&map_full, EVENTS_MAP_RING);
		return 0;
	}
	ev->kind = kind;
	ev->detail = 0;
	ev->ns = bpf_ktime_get_ns();
	ev->sender_pid = 0;
	ev->port = 0;
	ev->local_port = 0;
	ev->family = 0;
	ev->len = 0;
	__builtin_memset(ev->addr, 0, sizeof(ev->addr));
	ev->data[0] = 0;
	return ev;
}

static __always_inline void submit(struct sonde_event *ev)
{
	sonde_ring_submit(&events, &reader_asleep, &ring_checks, ev, wakeup_shift);
}

static __always_inline struct task_struct *current_task(void)
{
	return (struct task_struct *)bpf_get_current_task();
}

/* Runs in the new image. data: the file name in the first half, the
 * arguments (NUL-separated, as in /proc/PID/cmdline) in the second. */
static __always_inline void on_exec(struct linux_binprm *bprm)
{
	struct task_struct *task = current_task();
	struct sonde_event *ev = reserve(EVENT_EXEC);
	unsigned long start, end, len;

	if (!ev)
		return;
	fill_proc(task, &ev->proc);
	bpf_probe_read_kernel_str(ev->data, EVENT_DATA / 2, BPF_CORE_READ(bprm, filename));
	start = BPF_CORE_READ(task, mm, arg_start);
	end = BPF_CORE_READ(task, mm, arg_end);
	len = end > start ? end - start : 0;
	if (len > EVENT_DATA / 2)
		len = EVENT_DATA / 2;
	if (len && bpf_probe_read_user(ev->data + EVENT_DATA / 2, len, (void *)start) == 0)
		ev->len = len;
	submit(ev);
}

/* Runs in the exiting task; the process ends with its last thread. */
static __always_inline void on_exit(struct task_struct *task)
{
	struct sonde_event *ev;

	if (BPF_CORE_READ(task, signal, live.counter) != 0)
		return;
	ev = reserve(EVENT_EXIT);
	if (!ev)
		return;
	fill_proc(task, &ev->proc);
	ev->detail = BPF_CORE_READ(task, exit_code);
	submit(ev);
}

/* Runs in the sender (or wherever the kernel raised it); result 0: delivered. */
static __always_inline void on_signal(int sig, struct task_struct *target, int result)
{
	struct sonde_event *ev;

	if (result != 0 || sig <= 0 || sig >= 32 || !(FATAL_SIGNALS & (1U << sig)))
		return;
	ev = reserve(EVENT_SIGNAL);
	if (!ev)
		return;
	fill_proc(target, &ev->proc);
	ev->detail = sig;
	ev->sender_pid = bpf_get_current_pid_tgid() >> 32;
	submit(ev);
}

static __always_inline void on_oom_victim(struct task_struct *victim)
{
	struct sonde_event *ev = reserve(EVENT_OOM_KILL);

	if (!ev)
		return;
	fill_proc(victim, &ev->proc);
	submit(ev);
}

static __always_inline void peer_of(struct sock *sk, struct sonde_event *ev)
{
	ev->family = BPF_CORE_READ(sk, __sk_common.skc_family);
	ev->port = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	ev->local_port = BPF_CORE_READ(sk, __sk_common.skc_num);
	if (ev->family == SONDE_AF_INET6)
		BPF_CORE_READ_INTO(&ev->addr, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
	else
		BPF_CORE_READ_INTO(&ev->addr, sk, __sk_common.skc_daddr);
}

static __always_inline void on_state(struct sock *sk, int old, int new)
{
	struct sonde_event *ev;
	struct event_proc *listener;
	__u32 port;

	if (new != TCP_SYN_SENT && new != TCP_LISTEN && old != TCP_LISTEN &&
	    !(old == TCP_SYN_RECV && new == TCP_ESTABLISHED))
		return;
	if (BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP)
		return;
	port = BPF_CORE_READ(sk, __sk_common.skc_num);
	if (old == TCP_LISTEN) {
		bpf_map_delete_elem(&listeners, &port);
		return;
	}
	if (new == TCP_SYN_SENT) {
		/* connect(), in the connecting process. */
		ev = reserve(EVENT_CONNECT);
		if (!ev)
			return;
		fill_proc(current_task(), &ev->proc);
		peer_of(sk, ev);
		submit(ev);
		return;
	}
	if (new == TCP_LISTEN) {
		ev = reserve(EVENT_LISTEN);
		if (!ev)
			return;
		fill_proc(current_task(), &ev->proc);
		ev->port = port;
		ev->family = BPF_CORE_READ(sk, __sk_common.skc_family);
		if (bpf_map_update_elem(&listeners, &port, &ev->proc, BPF_ANY))
			sonde_count_map_full(&map_full, EVENTS_MAP_LISTENERS);
		submit(ev);
		return;
	}
	/* An accepted handshake: charged to the listener, when sonde saw it listen. */
	listener = bpf_map_lookup_elem(&listeners, &port);
	ev = reserve(EVENT_ACCEPT);
	if (!ev)
		return;
	if (listener)
		ev->proc = *listener;
	else
		__builtin_memset(&ev->proc, 0, sizeof(ev->proc));
	peer_of(sk, ev);
	submit(ev);
}

/* Whether `path` starts with one of the configured prefixes. */
static __always_inline int watched(const char *path)
{
	for (__u32 i = 0; i < EVENT_PREFIXES; i++) {
		int matched = 1;

		if (i >= write_prefix_count)
			return 0;
		for (__u32 j = 0; j < EVENT_PREFIX; j++) {
			char want = write_prefixes[i][j];

			if (!want)
				break;
			if (path[j] != want) {
				matched = 0;
				break;
			}
		}
		if (matched)
			return 1;
	}
	return 0;
}

#define AT_FDCWD -100

/* An open of the user's `path` (relative to `dirfd`) with `flags`: an event
 * when it writes under a watched prefix, or to a relative path (above). */
static __always_inline int on_open(int dirfd, const char *path, long flags)
{
	struct sonde_event *ev;
	long len;

	if (!(flags & O_WRITE_FLAGS))
		return 0;
	ev = reserve(EVENT_OPEN_WRITE);
	if (!ev)
		return 0;
	len = bpf_probe_read_user_str(ev->data, EVENT_DATA, path);
	if (len <= 0 || (ev->data[0] == '/' && !watched(ev->data))) {
		bpf_ringbuf_discard(ev, BPF_RB_NO_WAKEUP);
		return 0;
	}
	fill_proc(current_task(), &ev->proc);
	ev->detail = flags;
	ev->sender_pid = dirfd;
	submit(ev);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_openat")
int ev_tp_openat(struct trace_event_raw_sys_enter *ctx)
{
	return on_open(ctx->args[0], (const char *)ctx->args[1], ctx->args[2]);
}

/* The legacy calls glibc no longer makes but static and musl binaries do
 * (x86's open and creat; an architecture without them has no tracepoint
 * and user space leaves these out), and openat2, whose flags are the first
 * field of the struct open_how it points to. */
SEC("tracepoint/syscalls/sys_enter_open")
int ev_tp_open(struct trace_event_raw_sys_enter *ctx)
{
	return on_open(AT_FDCWD, (const char *)ctx->args[0], ctx->args[1]);
}

SEC("tracepoint/syscalls/sys_enter_creat")
int ev_tp_creat(struct trace_event_raw_sys_enter *ctx)
{
	return on_open(AT_FDCWD, (const char *)ctx->args[0], 01 | 0100 | 01000);
}

SEC("tracepoint/syscalls/sys_enter_openat2")
int ev_tp_openat2(struct trace_event_raw_sys_enter *ctx)
{
	__u64 flags = 0;

	if (bpf_probe_read_user(&flags, sizeof(flags), (void *)ctx->args[2]))
		return 0;
	return on_open(ctx->args[0], (const char *)ctx->args[1], (long)flags);
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(ev_btf_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	on_exec(bprm);
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(ev_btf_exit, struct task_struct *task)
{
	on_exit(task);
	return 0;
}

SEC("tp_btf/signal_generate")
int BPF_PROG(ev_btf_signal, int sig, struct kernel_siginfo *info, struct task_struct *task,
	     int group, int result)
{
	on_signal(sig, task, result);
	return 0;
}

SEC("tp_btf/mark_victim")
int BPF_PROG(ev_btf_oom_victim, struct task_struct *victim)
{
	on_oom_victim(victim);
	return 0;
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(ev_btf_sock_state, struct sock *sk, int old, int new)
{
	on_state(sk, old, new);
	return 0;
}

SEC("raw_tp/sched_process_exec")
int BPF_PROG(ev_raw_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	on_exec(bprm);
	return 0;
}

SEC("raw_tp/sched_process_exit")
int BPF_PROG(ev_raw_exit, struct task_struct *task)
{
	on_exit(task);
	return 0;
}

SEC("raw_tp/signal_generate")
int BPF_PROG(ev_raw_signal, int sig, struct kernel_siginfo *info, struct task_struct *task,
	     int group, int result)
{
	on_signal(sig, task, result);
	return 0;
}

SEC("raw_tp/mark_victim")
int BPF_PROG(ev_raw_oom_victim, struct task_struct *victim)
{
	on_oom_victim(victim);
	return 0;
}

SEC("raw_tp/inet_sock_set_state")
int BPF_PROG(ev_raw_sock_state, struct sock *sk, int old, int new)
{
	on_state(sk, old, new);
	return 0;
}
