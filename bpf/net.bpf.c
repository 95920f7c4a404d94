// SPDX-License-Identifier: GPL-2.0
/*
 * The network collector: bytes sent and received per process and protocol
 * (IPv4 and IPv6 sockets), and TCP's life per process: connects (ok or
 * failed) and their latency, accepts, connections established right now,
 * connection lifetimes, retransmits and resets.
 *
 * Bytes come from sock_send_length/sock_recv_length, which run in the
 * process's own context for every socket send and receive. TCP state
 * changes (inet_sock_set_state) mostly run in softirq context, so each
 * socket's owner is noted where it is known, in a hash keyed by the socket:
 * at connect() for a client; for an accepted connection, the process that
 * listens on its port (noted at listen()), or, for a listener older than
 * sonde, the first process that sends or receives on it.
 *
 * tp_btf, then raw_tp, then tracefs tracepoints: the tracefs events carry
 * the socket's address too, so all three share the same code.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "sonde.h"

char LICENSE[] SEC("license") = "GPL";

/* sock_owner.flags */
#define OWNER_PENDING 1	    /* accepted before its owner was known */
#define OWNER_ESTABLISHED 2 /* counted in the established gauge now */
#define OWNER_WAS_ESTABLISHED 4

struct sock_owner {
	struct proc_id who;
	__u64 since_ns; /* connect() start, then the moment it was established */
	__u32 flags;
	__u32 pad;
};

/*
 * Live TCP sockets sonde saw connect or be accepted, by address: an entry
 * goes when its socket closes, so this is bounded by open connections, not
 * by uptime (an insert beyond 65,536 open ones is counted as map full).
 * Entries are allocated as connections come: preallocated, the bound held
 * 7 MiB of kernel memory on a host with a few dozen connections; an insert
 * allocates from the kernel's per-CPU caches, once per connection.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct sock_owner);
} sockets SEC(".maps");

/* Listening port -> the process that listens. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct proc_id);
} listeners SEC(".maps");

/*
 * Both double-buffered (sonde.h): a half holds one interval's keys. Bytes
 * take a key per (process name, cgroup, direction, protocol), two or four a
 * name; TCP events one per (name, cgroup, event), two to four for a
 * connection's life: each half absorbs 2,000-4,000 names an interval.
 */
SONDE_DOUBLE_BUFFERED(net_bytes, BPF_MAP_TYPE_PERCPU_HASH, 8192, struct net_bytes_key, __u64);
SONDE_DOUBLE_BUFFERED(tcp_events, BPF_MAP_TYPE_PERCPU_HASH, 8192, struct tcp_event_key, __u64);

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TCP_HISTS);
	__type(key, __u32);
	__type(value, struct sonde_hist);
} tcp_latency SEC(".maps");

SONDE_MAP_FULL_COUNTER(NET_BOUNDED_MAPS);

static __always_inline void count_tcp(const struct proc_id *who, __u32 event)
{
	struct tcp_event_key key = { .event = event };

	if (who)
		key.who = *who;
	if (sonde_percpu_count(SONDE_HALF(tcp_events), &key))
		sonde_count_map_full(&map_full, NET_MAP_TCP);
}

static __always_inline void observe(__u32 which, __u64 ns)
{
	struct sonde_hist *hist = bpf_map_lookup_elem(&tcp_latency, &which);

	if (hist) {
		hist->slots[sonde_hist_slot(ns)] += 1;
		hist->sum_ns += ns;
	}
}

static __always_inline void established(struct sock_owner *owner, __u64 now)
{
	owner->since_ns = now;
	owner->flags |= OWNER_ESTABLISHED | OWNER_WAS_ESTABLISHED;
	count_tcp(&owner->who, TCP_ESTABLISHED_OPENED);
}

static __always_inline void on_bytes(struct sock *sk, int bytes, int flags, __u32 direction)
{
	struct net_bytes_key key = { .direction = direction };
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	struct sock_owner *owner;
	__u64 addr = (__u64)sk;

	if (bytes <= 0 || (flags & SONDE_MSG_PEEK))
		return;
	if (family != SONDE_AF_INET && family != SONDE_AF_INET6)
		return;
	key.proto = BPF_CORE_READ(sk, sk_protocol);
	sonde_current(&key.who);
	if (sonde_percpu_add(SONDE_HALF(net_bytes), &key, bytes))
		sonde_count_map_full(&map_full, NET_MAP_BYTES);

	if (key.proto != IPPROTO_TCP)
		return;
	owner = bpf_map_lookup_elem(&sockets, &addr);
	if (owner && (owner->flags & OWNER_PENDING)) {
		owner->who = key.who;
		owner->flags &= ~OWNER_PENDING;
		count_tcp(&owner->who, TCP_ACCEPT);
		established(owner, owner->since_ns);
	}
}

static __always_inline void on_state(struct sock *sk, int old, int new)
{
	__u64 addr = (__u64)sk, now = bpf_ktime_get_ns();
	struct sock_owner fresh = {}, *owner;
	struct proc_id *listener;
	__u32 port;

	if (BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP)
		return;
	port = BPF_CORE_READ(sk, __sk_common.skc_num);

	if (new == TCP_SYN_SENT) {
		sonde_current(&fresh.who);
		fresh.since_ns = now;
		if (bpf_map_update_elem(&sockets, &addr, &fresh, BPF_ANY))
			sonde_count_map_full(&map_full, NET_MAP_SOCKETS);
		return;
	}
	if (new == TCP_LISTEN) {
		sonde_current(&fresh.who);
		if (bpf_map_update_elem(&listeners, &port, &fresh.who, BPF_ANY))
			sonde_count_map_full(&map_full, NET_MAP_LISTENERS);
		return;
	}
	if (old == TCP_LISTEN) {
		bpf_map_delete_elem(&listeners, &port);
		return;
	}
	if (old == TCP_SYN_RECV && new == TCP_ESTABLISHED) {
		listener = bpf_map_lookup_elem(&listeners, &port);
		if (listener) {
			fresh.who = *listener;
			count_tcp(&fresh.who, TCP_ACCEPT);
			established(&fresh, now);
		} else {
			fresh.since_ns = now;
			fresh.flags = OWNER_PENDING;
		}
		if (bpf_map_update_elem(&sockets, &addr, &fresh, BPF_ANY))
			sonde_count_map_full(&map_full, NET_MAP_SOCKETS);
		return;
	}

	owner = bpf_map_lookup_elem(&sockets, &addr);
	if (!owner)
		return; /* older than sonde, or never established */
	if (old == TCP_SYN_SENT) {
		if (new == TCP_ESTABLISHED) {
			observe(TCP_HIST_CONNECT, now - owner->since_ns);
			count_tcp(&owner->who, TCP_CONNECT_OK);
			established(owner, now);
		} else {
			count_tcp(&owner->who, TCP_CONNECT_FAILED);
		}
	} else if (old == TCP_ESTABLISHED && (owner->flags & OWNER_ESTABLISHED)) {
		owner->flags &= ~OWNER_ESTABLISHED;
		count_tcp(&owner->who, TCP_ESTABLISHED_CLOSED);
	}
	if (new == TCP_CLOSE) {
		if (owner->flags & OWNER_WAS_ESTABLISHED)
			observe(TCP_HIST_LIFETIME, now - owner->since_ns);
		bpf_map_delete_elem(&sockets, &addr);
	}
}

/* Charged to the socket's owner when known (these run in softirq context). */
static __always_inline void on_tcp_event(const struct sock *sk, __u32 event)
{
	__u64 addr = (__u64)sk;
	struct sock_owner *owner = sk ? bpf_map_lookup_elem(&sockets, &addr) : 0;

	count_tcp(owner && !(owner->flags & OWNER_PENDING) ? &owner->who : 0, event);
}

SEC("tp_btf/sock_send_length")
int BPF_PROG(btf_send, struct sock *sk, int ret, int flags)
{
	on_bytes(sk, ret, flags, NET_SENT);
	return 0;
}

SEC("tp_btf/sock_recv_length")
int BPF_PROG(btf_recv, struct sock *sk, int ret, int flags)
{
	on_bytes(sk, ret, flags, NET_RECEIVED);
	return 0;
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(btf_state, struct sock *sk, int old, int new)
{
	on_state(sk, old, new);
	return 0;
}

SEC("tp_btf/tcp_retransmit_skb")
int BPF_PROG(btf_retransmit, const struct sock *sk)
{
	on_tcp_event(sk, TCP_RETRANSMIT);
	return 0;
}

SEC("tp_btf/tcp_send_reset")
int BPF_PROG(btf_send_reset, const struct sock *sk)
{
	on_tcp_event(sk, TCP_RESET_SENT);
	return 0;
}

SEC("tp_btf/tcp_receive_reset")
int BPF_PROG(btf_receive_reset, struct sock *sk)
{
	on_tcp_event(sk, TCP_RESET_RECEIVED);
	return 0;
}

SEC("raw_tp/sock_send_length")
int BPF_PROG(raw_send, struct sock *sk, int ret, int flags)
{
	on_bytes(sk, ret, flags, NET_SENT);
	return 0;
}

SEC("raw_tp/sock_recv_length")
int BPF_PROG(raw_recv, struct sock *sk, int ret, int flags)
{
	on_bytes(sk, ret, flags, NET_RECEIVED);
	return 0;
}

SEC("raw_tp/inet_sock_set_state")
int BPF_PROG(raw_state, struct sock *sk, int old, int new)
{
	on_state(sk, old, new);
	return 0;
}

SEC("raw_tp/tcp_retransmit_skb")
int BPF_PROG(raw_retransmit, const struct sock *sk)
{
	on_tcp_event(sk, TCP_RETRANSMIT);
	return 0;
}

SEC("raw_tp/tcp_send_reset")
int BPF_PROG(raw_send_reset, const struct sock *sk)
{
	on_tcp_event(sk, TCP_RESET_SENT);
	return 0;
}

SEC("raw_tp/tcp_receive_reset")
int BPF_PROG(raw_receive_reset, struct sock *sk)
{
	on_tcp_event(sk, TCP_RESET_RECEIVED);
	return 0;
}

SEC("tracepoint/sock/sock_send_length")
int tp_send(struct trace_event_raw_sock_msg_length *ctx)
{
	on_bytes(ctx->sk, ctx->ret, ctx->flags, NET_SENT);
	return 0;
}

SEC("tracepoint/sock/sock_recv_length")
int tp_recv(struct trace_event_raw_sock_msg_length *ctx)
{
	on_bytes(ctx->sk, ctx->ret, ctx->flags, NET_RECEIVED);
	return 0;
}

SEC("tracepoint/sock/inet_sock_set_state")
int tp_state(struct trace_event_raw_inet_sock_set_state *ctx)
{
	on_state((struct sock *)ctx->skaddr, ctx->oldstate, ctx->newstate);
	return 0;
}

SEC("tracepoint/tcp/tcp_retransmit_skb")
int tp_retransmit(struct trace_event_raw_tcp_retransmit_skb *ctx)
{
	on_tcp_event(ctx->skaddr, TCP_RETRANSMIT);
	return 0;
}

SEC("tracepoint/tcp/tcp_send_reset")
int tp_send_reset(struct trace_event_raw_tcp_send_reset *ctx)
{
	on_tcp_event(ctx->skaddr, TCP_RESET_SENT);
	return 0;
}

SEC("tracepoint/tcp/tcp_receive_reset")
int tp_receive_reset(struct trace_event_raw_tcp_event_sk *ctx)
{
	on_tcp_event(ctx->skaddr, TCP_RESET_RECEIVED);
	return 0;
}
